"""The unmatched request's short path: the caller's bytes go to the app as they came.

h11 still parses both directions (routing needs the request's headers, keep-alive needs
both messages' framing), but when nothing has to change, the bytes h11 has consumed are
forwarded as they are instead of being re-serialised through a second h11 connection:
the request head and body (chunked stays chunked) to the app, the response head and
body back to the caller. What decides "nothing has to change":

- the request: HTTP/1.1, not CONNECT, no `Connection`/`Keep-Alive`/`Proxy-Connection`
  (the agent speaks its own keep-alive to the app), no `Expect` (the agent answers
  100-continue itself), no `Upgrade` (handed off before), not both `Content-Length` and
  `Transfer-Encoding` (the app must not get to choose between them);
- the response (decided at its head; else it is re-framed as before): HTTP/1.1, no
  connection headers, framed by `Content-Length` or `Transfer-Encoding`, or bodiless
  (HEAD, 204, 304). Interim 1xx answers are dropped as on the re-framing path.

`Raw` keeps the bytes fed to one h11 connection that it has not consumed yet, so that
what an event consumed can be cut off the front (`take`).
"""

from __future__ import annotations

from typing import Any

import h11

from tp_cluster.agent import fastresponse

_REQUEST_NOT_RAW = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"expect",
                              b"upgrade"})
_RESPONSE_NOT_RAW = frozenset({b"connection", b"keep-alive", b"proxy-connection"})
_BODILESS = frozenset({204, 304})
_PROBES: dict[bytes, h11.Request] = {}
_PROBES_MAX = 64
END = h11.EndOfMessage()


def unread(conn: h11.Connection) -> int:
    """How many received bytes `conn` has not consumed. `trailing_data` would copy them
    (quadratic over a deep pipeline); h11 is pinned, so its buffer's length is read."""
    return len(conn._receive_buffer)


class Raw:
    """The bytes given to one h11 connection and not yet consumed by its events."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, conn: h11.Connection, data: bytes) -> None:
        conn.receive_data(data)
        self.buffer += data

    def take(self, conn: h11.Connection) -> bytes:
        """What `conn`'s events consumed since the last take (or drop)."""
        used = len(self.buffer) - unread(conn)
        if used <= 0:
            return b""
        data = bytes(self.buffer[:used])
        del self.buffer[:used]
        return data

    def drop(self, conn: h11.Connection) -> None:
        """Forget what was consumed (the re-framing path sent it in its own words)."""
        used = len(self.buffer) - unread(conn)
        if used > 0:
            del self.buffer[:used]


def request_is_raw(request: Any) -> bool:
    """The request can reach the app byte for byte (see the module's docstring)."""
    if request.http_version != b"1.1" or request.method == b"CONNECT":
        return False
    length = chunked = False
    for name, _ in request.headers:
        if name in _REQUEST_NOT_RAW:
            return False
        if name == b"content-length":
            length = True
        elif name == b"transfer-encoding":
            chunked = True
    return not (length and chunked)


def response_is_raw(response: Any, method: bytes) -> bool:
    """The app's response can reach the caller byte for byte."""
    if response.http_version != b"1.1":
        return False
    framed = method == b"HEAD" or response.status_code in _BODILESS
    for name, _ in response.headers:
        if name in _RESPONSE_NOT_RAW:
            return False
        if name in (b"content-length", b"transfer-encoding"):
            framed = True
    return framed


def probe(method: bytes) -> h11.Request:
    """A minimal request with `method` for the app-side h11 connection's state machine
    (the real head went out raw): the response's framing depends only on the method."""
    event = _PROBES.get(method)
    if event is None:
        event = h11.Request(method=method, target=b"/", headers=[(b"host", b"app")])
        if len(_PROBES) < _PROBES_MAX:
            _PROBES[method] = event
    return event


def fresh_server(old: h11.Connection, max_head: int) -> h11.Connection:
    """A new server connection that continues where `old` stopped reading (pipelined
    bytes, EOF): the raw exchange never told `old` about its response."""
    rest, closed = old.trailing_data
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
    if rest:
        conn.receive_data(rest)
    if closed:
        conn.receive_data(b"")
    return conn


def _write(writer: Any, out: list[bytes]) -> None:
    data = b"".join(out) if len(out) > 1 else out[0] if out else b""
    out.clear()
    if data:
        writer.write(data)


async def _drain_if_full(writer: Any, limit: int) -> None:
    # an await per write only when the peer is slower than us
    if writer.transport.get_write_buffer_size() > limit:
        await writer.drain()


async def send_request(router: Any, side: Any, exchange: Any) -> Any:
    """The request `router.down` just parsed, to the app (`side`) as the caller sent it;
    its body is counted into `exchange`. Returns `side` (as `HttpRouter._send_request`)."""
    down, raw, chunk = router.down, router.raw, router.ctx.chunk
    writer = side.writer
    if router.fast is not None:  # a whole bodiless request h11 has not seen (fastrequest)
        writer.write(router.fast)
        await _drain_if_full(writer, chunk)
        return side
    out = [raw.take(down).lstrip(b"\r\n")]  # the head (blank lines before it are noise)
    while True:
        event = down.next_event()
        kind = type(event)
        if kind is h11.Data:
            exchange.request_data(event.data)
        elif kind is h11.EndOfMessage:
            out.append(raw.take(down))
            _write(writer, out)
            await _drain_if_full(writer, chunk)
            return side
        elif event is h11.NEED_DATA:
            out.append(raw.take(down))
            _write(writer, out)
            await _drain_if_full(writer, chunk)
            raw.feed(down, await router.reader.read(chunk))
        else:
            from tp_cluster.agent.http import UpstreamFailed

            raise UpstreamFailed("the caller closed the connection before the request "
                                 "body was complete")


async def relay_response(router: Any, side: Any, exchange: Any) -> bool:
    """The app's response to the caller, as the app sent it when `fastresponse` takes it,
    else as `relay_response_h11` does. True: the caller's connection stays usable."""
    fast = await fastresponse.relay(router, side, exchange, router.raw_request.method)
    if not isinstance(fast, tuple):
        if router.fast is None:
            router.down = fresh_server(router.down, router.ctx.max_head)
        router.fast = None  # h11 never saw that request: its connection is as it was
        return True
    if router.fast is not None:
        router.catch_up(whole=True)
    data, eof = fast  # h11 goes on from what was read; its client state wants the request
    side.conn.send(probe(router.raw_request.method))
    side.conn.send(END)
    side.conn.receive_data(data)
    if eof:
        side.conn.receive_data(b"")
    return await relay_response_h11(router, side, exchange)


async def relay_response_h11(router: Any, side: Any, exchange: Any) -> bool:
    """The app's response (some of it may already be in `side.conn`) parsed by h11: to
    the caller as the app sent it when `response_is_raw`, else re-framed by `router`."""
    conn, reader = side.conn, side.reader
    writer, chunk = router.writer, router.ctx.chunk
    method = router.raw_request.method
    pending = Raw()
    if unread(conn):
        pending.buffer += conn.trailing_data[0]
    out: list[bytes] = []
    passing = False
    while True:
        event = conn.next_event()
        kind = type(event)
        if kind is h11.Data:
            exchange.response_data(event.data)
        elif kind is h11.EndOfMessage:
            out.append(pending.take(conn))
            _write(writer, out)
            await _drain_if_full(writer, chunk)
            router.down = fresh_server(router.down, router.ctx.max_head)
            return True
        elif event is h11.NEED_DATA:
            if passing:
                out.append(pending.take(conn))
                _write(writer, out)
                await _drain_if_full(writer, chunk)
            pending.feed(conn, await reader.read(chunk))
        elif kind is h11.Response:
            exchange.response_head(event)
            if not response_is_raw(event, method):
                router.raw_request = None
                headers = [(n, v) for n, v in event.headers.raw_items()
                           if n.lower() not in _RESPONSE_NOT_RAW]
                writer.write(router.down.send(h11.Response(
                    status_code=event.status_code, headers=headers, reason=event.reason)))
                relayed: bool = await router._relay_response(side, exchange)
                return relayed
            out.append(pending.take(conn))
            router.raw_out = True
            passing = True
        elif kind is h11.InformationalResponse:
            pending.take(conn)  # dropped: 100-continue was the agent's business
        else:  # ConnectionClosed
            from tp_cluster.agent.http import UpstreamFailed

            raise UpstreamFailed("the other side closed the connection before responding")
