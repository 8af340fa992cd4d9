"""Cell handlers served inside the kernel: the server behind `%%tp intercept`.

A cell defines a *handler*; `HandlerServer` serves it on 127.0.0.1:<free port> and the
intercept routes to that port. Handlers can be

- a function (sync or async) taking a `Request` and returning `str`, `bytes`, a dict or
  list (JSON), `None` (204), a `(body, status[, headers])` tuple or a `Response`;
- a WSGI app (Flask...), run in the connection's thread;
- an ASGI app (FastAPI, Starlette...), run on the kernel's handler event loop.

`set_handler()` swaps the handler atomically: every request reads the current handler
once when it arrives, so in-flight requests finish on the old one and none fails.
An exception in the handler gives the caller a 500 whose body is the traceback, and a
traffic row (`rows()`, a `TrafficRecord` with `error` set). `print` output of a handler
goes to the sink of the server (the cell's output), not to whatever cell runs now.

Each connection has a thread (`tp-handler-conn-*`) that parses HTTP/1.1 (httptools) and runs
synchronous handlers and WSGI apps itself, as `http.server`'s threading server does: no
hand-off per request. One event loop thread (`tp-handler-loop`) runs async handlers and
ASGI apps, and one watchdog thread answers 504 for a handler past its timeout; they serve
every server of the kernel, and `shutdown()` stops them (the extension's unload does).

Errors:

    TpError                    (tp_jupyter.errors)
    └── UsageError
        └── HandlerError       the cell defines no usable handler; says what to define
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import http
import inspect
import io
import itertools
import json
import logging
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, NamedTuple, TextIO

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter.errors import UsageError

log = logging.getLogger(__name__)

Sink = Callable[[str, str], None]
"""Receives handler output: (text, stream name "stdout" | "stderr")."""


class HandlerError(UsageError):
    """The cell defines no usable handler (the message says what to define)."""


# --- request and response -----------------------------------------------------------------

@dataclasses.dataclass
class Request:
    """What a function handler receives."""

    method: str
    path: str                       # without the query string
    query_string: str
    headers: CIMultiDictProxy[str]  # case-insensitive
    body: bytes
    remote: str = ""
    http_version: str = "1.1"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the last value of a repeated name wins)."""
        return dict(urllib.parse.parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def target(self) -> str:
        """The request target as sent: path with query."""
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    @property
    def mirror(self) -> str:
        """The mirror's name when this is a `wiretap` copy (the caller got the app's
        answer, not this handler's), else ""."""
        return str(self.headers.get("x-tp-mirror", ""))


@dataclasses.dataclass
class Response:
    """A response with a status and headers (a handler may also return plain values)."""

    body: Any = b""
    status: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Wire:
    """A normalised response, ready to send."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str = ""   # traceback or reason when the handler failed


def _body_and_type(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    if isinstance(body, dict | list):
        return json.dumps(body).encode(), "application/json"
    raise TypeError(f"a handler returned a {type(body).__name__}; return str, bytes, a dict or "
                    "list (JSON), None, a (body, status[, headers]) tuple or a "
                    "tp_jupyter.Response")


def to_wire(result: Any) -> _Wire:
    """Turn a function handler's return value into a response."""
    status, headers = 200, {}
    if isinstance(result, Response):
        status, headers, result = result.status, dict(result.headers), result.body
    elif isinstance(result, tuple) and 2 <= len(result) <= 3 and isinstance(result[1], int):
        status = result[1]
        headers = dict(result[2]) if len(result) == 3 else {}
        result = result[0]
    elif result is None:
        return _Wire(204, [], b"")
    body, ctype = _body_and_type(result)
    if ctype and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = ctype
    return _Wire(status, list(headers.items()), body)


# --- handler kinds --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Handler:
    """A handler object and how to call it."""

    obj: Any
    kind: str        # "function", "async function", "wsgi", "asgi"
    name: str


def _positional_count(fn: Any) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    # parameters with defaults do not count: `lambda req, v=version: ...` is a function handler
    return sum(1 for p in sig.parameters.values()
               if p.kind in kinds and p.default is inspect.Parameter.empty)


def classify(obj: Any, name: str = "") -> Handler:
    """Decide how to call `obj`; raise HandlerError if it cannot be a handler."""
    name = name or getattr(obj, "__name__", type(obj).__name__)
    if not callable(obj):
        raise HandlerError(f"{name} is a {type(obj).__name__}, not a handler; define a function "
                           "taking a request, or a WSGI/ASGI app")
    if hasattr(obj, "wsgi_app"):       # Flask and friends
        return Handler(obj, "wsgi", name)
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else obj.__call__
    count = _positional_count(call)
    if inspect.iscoroutinefunction(call):
        return Handler(obj, "asgi" if count == 3 else "async function", name)
    if count == 2:
        return Handler(obj, "wsgi", name)
    if count in (1, -1):
        return Handler(obj, "function", name)
    raise HandlerError(f"{name} takes {count} arguments; a handler takes one (the request), a "
                       "WSGI app two (environ, start_response), an ASGI app three")


def find_handler(before: Mapping[str, Any], after: Mapping[str, Any],
                 source: str = "") -> Handler:
    """The handler a cell defined: `handler` or `app` if set, else the last callable defined.

    `source` is the cell's text: a cell that names `handler`/`app` but binds the same object
    again (a cached app) still serves it.
    """
    for name in ("handler", "app"):
        if name in after and after[name] is not before.get(name, _MISSING):
            return classify(after[name], name)
    defined = [(k, v) for k, v in after.items()
               if not k.startswith("_") and before.get(k, _MISSING) is not v
               and ((inspect.isfunction(v) and v.__module__ == "__main__")
                    or hasattr(v, "wsgi_app") or _is_asgi_object(v))]
    if defined:  # dicts keep insertion order; a rebinding moves nothing, so prefer new names
        name, obj = defined[-1]
        return classify(obj, name)
    for name in ("handler", "app"):   # a cell that only rebinds the same object
        if name in after and re.search(rf"\b{name}\b", source):
            return classify(after[name], name)
    raise HandlerError("the cell defines no handler; define a function taking a request "
                       "(e.g. `def handler(request): return 'hi'`) or a WSGI/ASGI app named app")


_MISSING = object()


def _is_asgi_object(v: Any) -> bool:
    if inspect.isclass(v) or not callable(v):
        return False
    call = getattr(v, "__call__", None)  # noqa: B004 -- an instance's bound __call__
    return inspect.iscoroutinefunction(call) and _positional_count(call) == 3


# --- output routing -------------------------------------------------------------------------

_SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("tp_handler_sink",
                                                                   default=None)


class _RoutingStream(io.TextIOBase):
    """Stands in for sys.stdout/stderr: text written while a handler runs goes to its sink."""

    def __init__(self, inner: TextIO, stream: str) -> None:
        self.inner, self.stream = inner, stream

    def write(self, s: str) -> int:
        sink = _SINK.get()
        if sink is None:
            return self.inner.write(s)
        try:
            sink(s, self.stream)
        except Exception:  # a broken sink must not break the handler
            log.exception("handler output sink failed")
        return len(s)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _install_streams() -> None:
    if not isinstance(sys.stdout, _RoutingStream):
        sys.stdout = _RoutingStream(sys.stdout, "stdout")
    if not isinstance(sys.stderr, _RoutingStream):
        sys.stderr = _RoutingStream(sys.stderr, "stderr")


def _uninstall_streams() -> None:
    if isinstance(sys.stdout, _RoutingStream):
        sys.stdout = sys.stdout.inner
    if isinstance(sys.stderr, _RoutingStream):
        sys.stderr = sys.stderr.inner


class OutputLog:
    """A bounded text log of handler output; `sink` writes here and to an optional target."""

    def __init__(self, target: Sink | None = None, limit: int = 64 * 1024) -> None:
        self.target, self.limit = target, limit
        self._parts: collections.deque[str] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()

    def sink(self, text: str, stream: str) -> None:
        with self._lock:
            self._parts.append(text)
            self._size += len(text)
            while self._size > self.limit and len(self._parts) > 1:
                self._size -= len(self._parts.popleft())
        if self.target is not None:
            self.target(text, stream)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


# --- the shared loop and watchdog -----------------------------------------------------------

class _Host:
    """The kernel's event loop thread (async handlers) and request watchdog, shared by every
    HandlerServer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="tp-handler-loop", daemon=True)
        self.thread.start()
        self.watchdog = _Watchdog()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        except Exception:
            log.exception("the handler event loop failed")
        finally:
            self.loop.close()

    def stop(self) -> None:
        self.watchdog.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(get_settings().notebook.handler_stop_timeout)
        if self.thread.is_alive():
            log.error("the handler event loop did not stop in time")


class _Watchdog:
    """Answers 504 for a synchronous handler that runs past `handler_timeout`.

    Sync handlers run in their connection's thread (no hand-off to a pool: that hand-off
    was most of a request's cost); this one thread watches their deadlines. Deadlines
    arrive in increasing order for one timeout value, so the thread sleeps until the
    earliest one and is only woken when a shorter timeout makes an earlier one.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[int, tuple[float, _Exchange]] = {}
        self._wake_at = float("inf")
        self._stopped = False
        self._ids = itertools.count()
        self.thread = threading.Thread(target=self._run, name="tp-handler-watchdog",
                                       daemon=True)
        self.thread.start()

    def watch(self, exchange: _Exchange, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        key = next(self._ids)
        with self._cond:
            self._pending[key] = (deadline, exchange)
            if deadline < self._wake_at:
                self._cond.notify()
        return key

    def done(self, key: int) -> None:
        with self._cond:
            self._pending.pop(key, None)

    def _run(self) -> None:
        while True:
            expired: list[_Exchange] = []
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                for key, (deadline, exchange) in list(self._pending.items()):
                    if deadline <= now:
                        del self._pending[key]
                        expired.append(exchange)
                if not expired:
                    self._wake_at = min((d for d, _ in self._pending.values()),
                                        default=now + get_settings().notebook.handler_timeout)
                    self._cond.wait(max(0.0, self._wake_at - now))
                    self._wake_at = float("inf")
            for exchange in expired:
                try:
                    exchange.time_out()
                except Exception:
                    log.exception("answering a timed-out handler request failed")

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self.thread.join(get_settings().notebook.handler_stop_timeout)


class _Shared:
    """The one host of the kernel (created with the first server, gone after shutdown)."""

    host: _Host | None = None
    lock = threading.Lock()


_servers: list[HandlerServer] = []


def _get_host() -> _Host:
    with _Shared.lock:
        if _Shared.host is None:
            _Shared.host = _Host()
            _install_streams()
        return _Shared.host


def servers() -> list[HandlerServer]:
    """The running servers of this kernel."""
    return list(_servers)


def shutdown() -> None:
    """Stop every server, then the loop and watchdog threads, and restore sys.stdout/stderr."""
    for server in list(_servers):
        server.stop()
    with _Shared.lock:
        if _Shared.host is not None:
            _Shared.host.stop()
            _Shared.host = None
            _uninstall_streams()


# --- the server -----------------------------------------------------------------------------

_ids = itertools.count(1)
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_TEXT = ("Content-Type", "text/plain; charset=utf-8")


class _Parsed:
    """A request as the parser delivered it (body complete, or cut short by the limit)."""

    __slots__ = ("body", "headers", "keep_alive", "method", "target", "too_large", "version")

    def __init__(self) -> None:
        self.method = self.version = ""
        self.target = b""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.keep_alive = True
        self.too_large = False


class _Connection:
    """One accepted connection: HTTP/1.1 (httptools, llhttp) on a blocking socket, served by
    its own thread, which also runs synchronous handlers (as `http.server`'s threading
    server does: no hand-off per request, which was most of a request's cost)."""

    def __init__(self, server: HandlerServer, sock: socket.socket, remote: str) -> None:
        self.server, self.sock, self.remote = server, sock, remote
        self.parser = httptools.HttpRequestParser(self)
        self.limit = get_settings().notebook.handler_body_limit
        self.current = _Parsed()
        self.ready: collections.deque[_Parsed] = collections.deque()
        self.write_lock = threading.Lock()
        self.busy = False
        self.closed = False

    def close(self) -> None:
        """Wake the thread (blocked in recv) and end the connection."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- parser callbacks (called inside feed_data)

    def on_message_begin(self) -> None:
        self.current = _Parsed()

    def on_url(self, url: bytes) -> None:
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        cur = self.current
        cur.method = self.parser.get_method().decode("ascii")
        cur.version = self.parser.get_http_version()
        length = next((v for k, v in cur.headers if k.lower() == "content-length"), "")
        if length.isdigit() and int(length) > self.limit:
            self._cut()
        elif any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in cur.headers):
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        cur = self.current
        if cur.too_large:
            return
        cur.body += body
        if len(cur.body) > self.limit:
            self._cut()

    def on_message_complete(self) -> None:
        cur = self.current
        if not cur.too_large:
            cur.keep_alive = self.parser.should_keep_alive()
            self.ready.append(cur)

    def _cut(self) -> None:
        self.current.too_large = True
        self.current.keep_alive = False
        self.ready.append(self.current)   # answered 413 now, without the rest of the body

    # -- serving

    def serve(self) -> None:
        try:
            while not self.closed:
                while not self.ready:
                    data = self.sock.recv(65536)
                    if not data:
                        return
                    try:
                        self.parser.feed_data(data)
                    except httptools.HttpParserUpgrade:
                        self.current.keep_alive = False   # answered as plain HTTP, then closed
                    except httptools.HttpParserError as e:
                        self._bad_request(str(e))
                        return
                parsed = self.ready.popleft()
                self.busy = True
                try:
                    if not self._serve_request(parsed):
                        return
                finally:
                    self.busy = False
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.server._forget(self)

    def _bad_request(self, reason: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(f"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                              f"Content-Length: {len(reason) + 1}\r\nConnection: close\r\n\r\n"
                              f"{reason}\n".encode("latin-1", "replace"))

    def _serve_request(self, parsed: _Parsed) -> bool:
        """Serve one request; False when the connection must end."""
        server = self.server
        handler = server._slot      # read once: a swap now does not affect this request
        start, t0 = time.time(), time.monotonic()
        path, _, query = parsed.target.decode("latin-1").partition("?")
        req = Request(parsed.method, path, query, CIMultiDictProxy(CIMultiDict(parsed.headers)),
                      bytes(parsed.body), self.remote, parsed.version)
        exchange = _Exchange(self, req, start, t0, parsed.keep_alive)
        if parsed.too_large:
            return exchange.too_large(self.limit)
        _SINK.set(server.output.sink)
        return exchange.answer(server._call(handler, exchange))


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    for k, v in headers:
        if "\r" in k or "\n" in k or "\r" in v or "\n" in v or ":" in k:
            raise ValueError(f"the response header {k!r} has a line break or colon in it")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Exchange:
    """One request and its answer; answered exactly once (by the handler or the watchdog)."""

    def __init__(self, conn: _Connection, req: Request, start: float, t0: float,
                 keep_alive: bool) -> None:
        self.conn, self.req, self.start, self.t0 = conn, req, start, t0
        self.keep_alive = keep_alive
        self.answered = False

    def answer(self, wire: _Wire, close: bool = False) -> bool:
        """Send `wire` unless already answered; False when the connection must end."""
        conn = self.conn
        close = close or not self.keep_alive
        with conn.write_lock:
            if self.answered:
                return False      # the watchdog answered 504 and ended the connection
            self.answered = True
            headers = [(k, v) for k, v in wire.headers if k.lower() not in _HOP_BY_HOP]
            if wire.status not in (204, 304) and wire.status >= 200:
                headers.append(("Content-Length", str(len(wire.body))))
            if close:
                headers.append(("Connection", "close"))
            try:
                data = _head(wire.status, headers)
            except ValueError as e:
                wire = _Wire(500, [_TEXT], f"tp-jupyter: {e}\n".encode(), str(e))
                data = _head(500, [*wire.headers, ("Content-Length", str(len(wire.body)))])
            if wire.body and self.req.method != "HEAD" and wire.status not in (204, 304):
                data += wire.body
            # the row first: whoever got the answer finds the exchange in rows()
            conn.server._record(self.req, wire, start=self.start,
                                duration_ms=(time.monotonic() - self.t0) * 1000)
            try:
                conn.sock.sendall(data)
            except OSError:
                close = True
        return not close

    def too_large(self, limit: int) -> bool:
        msg = f"request body larger than {limit} bytes (settings: notebook.handler_body_limit)"
        self.answer(_Wire(413, [_TEXT], f"{msg}\n".encode(), msg), close=True)
        # read (a bounded amount of) what the client still sends: closing with unread data
        # resets the connection, and the client might lose the 413
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_WR)
            self.conn.sock.settimeout(get_settings().notebook.handler_stop_timeout)
            drained = 0
            while drained <= limit and (chunk := self.conn.sock.recv(65536)):
                drained += len(chunk)
        return False

    def time_out(self) -> None:
        """Called by the watchdog: the handler is still running."""
        timeout = get_settings().notebook.handler_timeout
        msg = (f"handler {self.conn.server._slot.name} did not answer within {timeout:g} s "
               "(settings: notebook.handler_timeout)")
        self.answer(_Wire(504, [_TEXT], f"{msg}\n".encode(), msg), close=True)
        self.conn.close()


class HandlerServer:
    """Serves one swappable handler on 127.0.0.1:<port> inside the kernel."""

    def __init__(self, handler: Any, label: str = "", sink: Sink | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._slot = handler if isinstance(handler, Handler) else classify(handler)
        self.label = label or self._slot.name
        self.output = OutputLog(sink)
        self.swaps = 0
        s = get_settings().notebook
        self._rows: collections.deque[_Done] = collections.deque(maxlen=s.kernel_traffic_rows)
        self._listeners: list[Callable[[mpb.TrafficRecord], None]] = []
        self._host = _get_host()
        self._connections: set[_Connection] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(s.handler_threads)
        self._listener: socket.socket | None = socket.create_server((host, port))
        self.port = int(self._listener.getsockname()[1])
        self.address = host
        self.url = f"http://{host}:{self.port}"
        """Where the intercept's traffic arrives (the daemon dials this address)."""
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,),
                                          name=f"tp-handler-accept-{self.port}", daemon=True)
        self._acceptor.start()
        _servers.append(self)

    # -- public API

    @property
    def handler(self) -> Handler:
        """The handler serving new requests (`set_handler` swaps it)."""
        return self._slot

    def set_handler(self, handler: Any) -> Handler:
        """Swap the handler; requests that already started finish on the old one."""
        new = handler if isinstance(handler, Handler) else classify(handler)
        self._slot = new   # one reference assignment: atomic for readers
        self.swaps += 1
        return new

    def set_sink(self, sink: Sink | None) -> None:
        """Send further handler output to `sink` (the re-run cell's output)."""
        self.output.target = sink

    def rows(self) -> list[mpb.TrafficRecord]:
        """Exchanges this server answered, oldest first (bounded)."""
        return [self._row(done) for done in list(self._rows)]

    def add_listener(self, fn: Callable[[mpb.TrafficRecord], None]) -> None:
        """Call `fn(row)` (on the thread that answered) after every exchange."""
        self._listeners.append(fn)

    def stop(self) -> None:
        """Stop listening; in-flight requests get `handler_stop_timeout` seconds."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)   # wakes the accept thread
        listener.close()
        timeout = get_settings().notebook.handler_stop_timeout
        self._acceptor.join(timeout)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                conns = list(self._connections)
            for conn in conns:
                if not conn.busy:
                    conn.close()
            if not any(c.busy for c in conns) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for conn in conns:
            conn.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("a cell handler of %s is still running after the server stopped",
                          self.label)
        with contextlib.suppress(ValueError):
            _servers.remove(self)

    @property
    def running(self) -> bool:
        return self._listener is not None

    def __repr__(self) -> str:
        state = "serving" if self.running else "stopped"
        h = self._slot
        return f"<HandlerServer {self.label} {h.kind} {h.name} {state} {self.url}>"

    # -- serving

    def _accept(self, listener: socket.socket) -> None:
        while True:
            self._slots.acquire()   # at most handler_threads connections at once
            try:
                sock, addr = listener.accept()
            except OSError:
                self._slots.release()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, str(addr[0]))
            t = threading.Thread(target=conn.serve, name=f"tp-handler-conn-{self.port}",
                                 daemon=True)
            with self._lock:
                self._connections.add(conn)
                self._threads.add(t)
            t.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._threads.discard(threading.current_thread())
        self._slots.release()

    def _call(self, handler: Handler, exchange: _Exchange) -> _Wire:
        timeout = get_settings().notebook.handler_timeout
        req = exchange.req
        try:
            if handler.kind in ("asgi", "async function"):
                call = _call_asgi if handler.kind == "asgi" else _call_async
                coro = self._call_on_loop(call(handler.obj, req), limit=timeout)
                wire: _Wire = asyncio.run_coroutine_threadsafe(coro, self._host.loop).result()
                return wire
            key = self._host.watchdog.watch(exchange, timeout)
            try:
                if handler.kind == "wsgi":
                    return _call_wsgi(handler.obj, req, self.address, self.port)
                return _call_function(handler.obj, req)
            finally:
                self._host.watchdog.done(key)
        except TimeoutError:
            msg = (f"handler {handler.name} did not answer within {timeout:g} s "
                   "(settings: notebook.handler_timeout)")
            return _Wire(504, [_TEXT], f"{msg}\n".encode(), msg)
        except Exception as e:   # HandlerFailed carries the user's traceback; others are ours
            tb = e.traceback if isinstance(e, HandlerFailed) else traceback.format_exc()
            self.output.sink(tb, "stderr")
            return _Wire(500, [_TEXT],
                         f"tp-jupyter: handler {handler.name} raised an exception\n\n{tb}"
                         .encode(), tb)

    async def _call_on_loop(self, coro: Coroutine[Any, Any, _Wire], *, limit: float) -> _Wire:
        _SINK.set(self.output.sink)    # this task's context: print goes to the cell
        async with asyncio.timeout(limit):
            return await coro

    def _record(self, req: Request, wire: _Wire, *, start: float, duration_ms: float) -> None:
        # the protobuf row is built when asked for (rows(), a listener): building it for
        # every request cost as much as parsing the request
        exchange = _Done(f"kernel-{next(_ids)}", req.method, req.target, req.remote,
                         req.http_version, tuple(req.headers.items()), req.body, wire.status,
                         tuple((str(k), str(v)) for k, v in wire.headers), wire.body,
                         wire.error, start, duration_ms)
        self._rows.append(exchange)
        if not self._listeners:
            return
        row = self._row(exchange)
        for fn in list(self._listeners):
            try:
                fn(row)
            except Exception:
                log.exception("a traffic listener of %s failed", self.label)

    def _row(self, done: _Done) -> mpb.TrafficRecord:
        limit = get_settings().intercept.capture_body_limit
        body, out = done.body, done.response_body
        row = mpb.TrafficRecord(
            id=done.id, intercept_name=self.label, method=done.method,
            path=done.target, source=done.remote, http_version=done.http_version,
            request_headers=[mpb.Header(name=k, value=v) for k, v in done.headers],
            status=done.status, reason=_reason(done.status),
            response_headers=[mpb.Header(name=k, value=v) for k, v in done.response_headers],
            duration_ms=done.duration_ms, time_to_first_byte_ms=done.duration_ms,
            request_size=len(body), response_size=len(out),
            routed_to=mpb.ROUTED_TO_LOCAL, port=self.port,
            request_body_prefix=body[:limit], response_body_prefix=out[:limit],
            request_body_truncated=len(body) > limit,
            response_body_truncated=len(out) > limit, error=done.error)
        row.time.FromNanoseconds(int(done.start * 1e9))
        return row


class _Done(NamedTuple):
    """An answered exchange, kept until its row is asked for. Only strings, bytes and
    numbers in tuples: the collector stops tracking it, so thousands kept cost no GC time
    (objects here made the p99 of a request several ms)."""

    id: str
    method: str
    target: str
    remote: str
    http_version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes
    error: str
    start: float
    duration_ms: float


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- calling handlers -------------------------------------------------------------------------

class HandlerFailed(Exception):
    """A handler raised; `traceback` shows the handler's frames only (internal)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb.strip().splitlines()[-1] if tb.strip() else "handler failed")
        self.traceback = tb


def _failed(e: BaseException) -> HandlerFailed:
    # drop this module's frame(s) at the top: the user wants to see their own code
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return HandlerFailed("".join(traceback.format_exception(type(e), e, tb)))


def _returned(result: Any) -> _Wire:
    """What a function handler returned, as the response (a bad type is the handler's fault)."""
    try:
        return to_wire(result)
    except TypeError as e:
        raise HandlerFailed(f"{e}\n") from None


def _call_function(fn: Any, req: Request) -> _Wire:
    try:
        result = fn(req)
    except Exception as e:
        raise _failed(e) from None
    return _returned(result)


async def _call_async(fn: Any, req: Request) -> _Wire:
    try:
        result = await fn(req)
    except Exception as e:
        raise _failed(e) from None
    return _returned(result)


# --- WSGI and ASGI adapters -------------------------------------------------------------------

def _call_wsgi(app: Any, req: Request, host: str, port: int) -> _Wire:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(req.path, "latin-1"),
        "QUERY_STRING": req.query_string,
        "SERVER_NAME": host, "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": f"HTTP/{req.http_version}",
        "REMOTE_ADDR": req.remote.split(":")[0],
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(req.body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(req.body)),
    }
    for k, v in req.headers.items():
        key = k.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = v
        elif key != "CONTENT_LENGTH":
            name = f"HTTP_{key}"
            environ[name] = f"{environ[name]},{v}" if name in environ else v
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return chunks.append

    chunks: list[bytes] = []
    try:
        result: Iterable[bytes] = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception as e:
        raise _failed(e) from None
    if not started:
        raise HandlerFailed("the WSGI app returned without calling start_response\n")
    status_text, headers = started
    return _Wire(int(status_text.split()[0]), list(headers), b"".join(chunks))


async def _call_asgi(app: Any, req: Request) -> _Wire:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": req.http_version, "method": req.method, "scheme": "http",
        "path": urllib.parse.unquote(req.path), "raw_path": req.path.encode(),
        "query_string": req.query_string.encode(), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in req.headers.items()],
        "client": None, "server": None, "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": req.body, "more_body": False}
        await asyncio.Event().wait()   # nothing more arrives; the app is cancelled at the end
        return {"type": "http.disconnect"}

    status = 500
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    try:
        await app(scope, receive, send)
    except Exception as e:
        raise _failed(e) from None
    return _Wire(status, headers, b"".join(chunks))
