"""Cell handlers served inside the kernel: the server behind `%%tp intercept`.

A cell defines a *handler*; `HandlerServer` serves it on 127.0.0.1:<free port> and the
intercept routes to that port. Handlers can be

- a function (sync or async) taking a `Request` and returning `str`, `bytes`, a dict or
  list (JSON), `None` (204), a `(body, status[, headers])` tuple or a `Response`;
- a WSGI app (Flask...), run in a worker thread;
- an ASGI app (FastAPI, Starlette...), run on the server's event loop.

`set_handler()` swaps the handler atomically: every request reads the current handler
once when it arrives, so in-flight requests finish on the old one and none fails.
An exception in the handler gives the caller a 500 whose body is the traceback, and a
traffic row (`rows()`, a `TrafficRecord` with `error` set). `print` output of a handler
goes to the sink of the server (the cell's output), not to whatever cell runs now.

One event loop thread (`tp-handler-loop`) and one worker pool (`tp-handler-*`) serve
every server of the kernel; `shutdown()` stops them (the extension's unload does).

Errors:

    TpError                    (tp_jupyter.errors)
    └── UsageError
        └── HandlerError       the cell defines no usable handler; says what to define
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import io
import itertools
import json
import logging
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TextIO

from aiohttp import web
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


# --- the shared loop ------------------------------------------------------------------------

class _Host:
    """The kernel's event loop thread and worker pool, shared by every HandlerServer."""

    def __init__(self) -> None:
        s = get_settings().notebook
        self.loop = asyncio.new_event_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(s.handler_threads,
                                                          thread_name_prefix="tp-handler")
        self.thread = threading.Thread(target=self._run, name="tp-handler-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        except Exception:
            log.exception("the handler event loop failed")
        finally:
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(get_settings().notebook.handler_stop_timeout)
        if self.thread.is_alive():
            log.error("the handler event loop did not stop in time")
        # a handler stuck in a worker must not hang the unload: wait a bounded time
        waiter = threading.Thread(target=self.pool.shutdown, kwargs={"cancel_futures": True},
                                  name="tp-handler-pool-stop", daemon=True)
        waiter.start()
        waiter.join(get_settings().notebook.handler_stop_timeout)
        if waiter.is_alive():
            log.error("a cell handler is still running after the server stopped")


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
    """Stop every server, then the loop thread and the pool, and restore sys.stdout/stderr."""
    for server in list(_servers):
        server.stop()
    with _Shared.lock:
        if _Shared.host is not None:
            _Shared.host.stop()
            _Shared.host = None
            _uninstall_streams()


# --- the server -----------------------------------------------------------------------------

_ids = itertools.count(1)


class HandlerServer:
    """Serves one swappable handler on 127.0.0.1:<port> inside the kernel."""

    def __init__(self, handler: Any, label: str = "", sink: Sink | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._slot = handler if isinstance(handler, Handler) else classify(handler)
        self.label = label or self._slot.name
        self.output = OutputLog(sink)
        self.swaps = 0
        s = get_settings().notebook
        self._rows: collections.deque[mpb.TrafficRecord] = collections.deque(
            maxlen=s.kernel_traffic_rows)
        self._listeners: list[Callable[[mpb.TrafficRecord], None]] = []
        self._host = _get_host()
        self._runner: web.ServerRunner | None = None
        self.port = self._host.call(self._start(host, port), s.handler_start_timeout)
        self.address = host
        self.url = f"http://{host}:{self.port}"
        """Where the intercept's traffic arrives (the daemon dials this address)."""
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
        return list(self._rows)

    def add_listener(self, fn: Callable[[mpb.TrafficRecord], None]) -> None:
        """Call `fn(row)` (on the loop thread) after every exchange."""
        self._listeners.append(fn)

    def stop(self) -> None:
        """Stop listening; in-flight requests get `handler_stop_timeout` seconds."""
        if self._runner is None:
            return
        s = get_settings().notebook
        try:
            self._host.call(self._runner.cleanup(), s.handler_stop_timeout + 1)
        except Exception:
            log.exception("stopping the handler server %s failed", self.label)
        self._runner = None
        with contextlib.suppress(ValueError):
            _servers.remove(self)

    @property
    def running(self) -> bool:
        return self._runner is not None

    def __repr__(self) -> str:
        state = "serving" if self.running else "stopped"
        h = self._slot
        return f"<HandlerServer {self.label} {h.kind} {h.name} {state} {self.url}>"

    # -- serving

    async def _start(self, host: str, port: int) -> int:
        s = get_settings().notebook
        server = web.Server(self._handle)
        self._runner = web.ServerRunner(server, shutdown_timeout=s.handler_stop_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = self._slot       # read once: a swap now does not affect this request
        start = time.time()
        t0 = time.monotonic()
        limit = get_settings().notebook.handler_body_limit
        body = b""
        if (request.content_length or 0) > limit:
            msg = (f"request body larger than {limit} bytes "
                   "(settings: notebook.handler_body_limit)")
            wire = _Wire(413, [("Content-Type", "text/plain; charset=utf-8")],
                         f"{msg}\n".encode(), msg)
        else:
            body = await request.content.read()
            req = Request(request.method, request.path, request.query_string,
                          CIMultiDictProxy(CIMultiDict(request.headers)), body,
                          request.remote or "", f"{request.version.major}.{request.version.minor}")
            _SINK.set(self.output.sink)
            wire = await self._call(handler, req)
        response = web.Response(status=wire.status, body=wire.body)
        for k, v in wire.headers:
            response.headers.add(k, v)
        self._record(request, body, wire, start=start,
                     duration_ms=(time.monotonic() - t0) * 1000)
        return response

    async def _call(self, handler: Handler, req: Request) -> _Wire:
        timeout = get_settings().notebook.handler_timeout
        try:
            if handler.kind == "asgi":
                return await asyncio.wait_for(_call_asgi(handler.obj, req), timeout)
            if handler.kind == "async function":
                return await asyncio.wait_for(_call_async(handler.obj, req), timeout)
            fn: Callable[[], Any]
            if handler.kind == "wsgi":
                fn = functools.partial(_call_wsgi, handler.obj, req, self.address, self.port)
            else:
                fn = functools.partial(_call_function, handler.obj, req)
            ctx = contextvars.copy_context()   # carries the output sink into the worker
            loop = asyncio.get_running_loop()
            wire: _Wire = await asyncio.wait_for(
                loop.run_in_executor(self._host.pool, ctx.run, fn), timeout)
            return wire
        except TimeoutError:
            msg = (f"handler {handler.name} did not answer within {timeout:.0f} s "
                   "(settings: notebook.handler_timeout)")
            return _Wire(504, [("Content-Type", "text/plain; charset=utf-8")],
                         f"{msg}\n".encode(), msg)
        except Exception as e:   # HandlerFailed carries the user's traceback; others are ours
            tb = e.traceback if isinstance(e, HandlerFailed) else traceback.format_exc()
            self.output.sink(tb, "stderr")
            return _Wire(500, [("Content-Type", "text/plain; charset=utf-8")],
                         f"tp-jupyter: handler {handler.name} raised an exception\n\n{tb}"
                         .encode(), tb)

    def _record(self, request: web.BaseRequest, body: bytes, wire: _Wire, *,
                start: float, duration_ms: float) -> None:
        limit = get_settings().intercept.capture_body_limit
        row = mpb.TrafficRecord(
            id=f"kernel-{next(_ids)}", intercept_name=self.label, method=request.method,
            path=request.path_qs, source=request.remote or "",
            http_version=f"{request.version.major}.{request.version.minor}",
            request_headers=[mpb.Header(name=k, value=v) for k, v in request.headers.items()],
            status=wire.status, reason=web.Response(status=wire.status).reason or "",
            response_headers=[mpb.Header(name=k, value=v) for k, v in wire.headers],
            duration_ms=duration_ms, time_to_first_byte_ms=duration_ms,
            request_size=len(body), response_size=len(wire.body),
            routed_to=mpb.ROUTED_TO_LOCAL, port=self.port,
            request_body_prefix=body[:limit], response_body_prefix=wire.body[:limit],
            request_body_truncated=len(body) > limit,
            response_body_truncated=len(wire.body) > limit, error=wire.error)
        row.time.FromNanoseconds(int(start * 1e9))
        self._rows.append(row)
        for fn in list(self._listeners):
            try:
                fn(row)
            except Exception:
                log.exception("a traffic listener of %s failed", self.label)


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
