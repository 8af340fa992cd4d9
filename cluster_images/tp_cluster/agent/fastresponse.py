"""The app's answer to a byte-for-byte request, parsed by llhttp (`httptools`) instead of h11.

Profiled (bench/agent_router.py), h11 cost the agent about as much per unmatched request
as everything else together: ~90 us of ~280 us CPU for the response alone (its client
connection, the probe request, three events), vs a few us in llhttp. This path takes
only the plain case and leaves every other one to h11 (`rawpath.relay_response_h11`),
handed the bytes read so far, so h11's behaviour and errors stay as they were:

- taken: an HTTP/1.1 response of 200..599 to a method other than HEAD, without
  connection headers, framed by exactly one all-digit `Content-Length` or by
  `Transfer-Encoding: chunked` alone, or a 204/304 with neither;
- else (1xx, HTTP/1.0, read-until-EOF, HEAD, odd framing, bytes llhttp refuses, EOF
  before the head): h11 decides, as before.

Once the head went out, a broken rest (EOF, bytes llhttp refuses, a second response the
agent did not ask for) raises `h11.RemoteProtocolError`, as h11 did: the caller's
connection is reset, the row gets the reason.
"""

from __future__ import annotations

from typing import Any

import h11
import httptools

_NOT_RAW = frozenset({b"connection", b"keep-alive", b"proxy-connection"})
_BODILESS = frozenset({204, 304})


class Head:
    """The response head as `capture.Exchange` reads an h11.Response."""

    __slots__ = ("http_version", "items", "reason", "status_code")

    def __init__(self, status: int, reason: bytes, version: bytes,
                 items: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.reason = reason
        self.http_version = version
        self.items = items

    @property
    def headers(self) -> Head:
        return self

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        return self.items


class _Parse:
    """llhttp's callbacks: the head, the body pieces, the end."""

    __slots__ = ("body", "done", "extra", "head", "items", "parser", "reason", "status")

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.status = 0
        self.head = False
        self.body: list[bytes] = []
        self.done = False
        self.extra = False
        self.parser: Any = None

    def on_message_begin(self) -> None:
        if self.head:
            self.extra = True  # a second message: nothing the agent asked for

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.items.append((name, value.rstrip(b" \t")))  # as h11 gives it

    def on_headers_complete(self) -> None:
        if not self.head:
            self.head = True
            self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.done:
            self.extra = True
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done:
            self.extra = True
        self.done = True


def _plain(parse: _Parse, version: str, method: bytes) -> bool:
    """The response may be relayed as read (see the module's docstring)."""
    if version != "1.1" or parse.status < 200 or method == b"HEAD":
        return False
    length = chunked = 0
    for name, value in parse.items:
        low = name.lower()
        if low in _NOT_RAW:
            return False
        if low == b"content-length":
            if not value.strip().isdigit():
                return False
            length += 1
        elif low == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                return False
            chunked += 1
    if parse.status in _BODILESS:
        return not (length or chunked)
    return length + chunked == 1


def _broken(what: str) -> h11.RemoteProtocolError:
    return h11.RemoteProtocolError(f"the app's response broke off after its head: {what}")


async def relay(router: Any, side: Any, exchange: Any, method: bytes
                ) -> bool | tuple[bytes, bool]:
    """The answer to a `method` request from `side` (the app, or a matched request's
    connection: `side.recv`) to the caller. True once it went whole; else (the bytes
    read, EOF seen) for h11 to go on from, nothing having been sent to the caller."""
    recv, writer, chunk = side.recv, router.writer, router.ctx.chunk
    parse = _Parse()
    parser = httptools.HttpResponseParser(parse)
    parse.parser = parser
    read: list[bytes] = []
    while not parse.head:
        data = await recv()
        if not data:
            return b"".join(read), True
        read.append(data)
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return b"".join(read), False
    if parse.extra or not _plain(parse, parser.get_http_version(), method):
        return b"".join(read), False
    exchange.response_head(Head(parse.status, parse.reason, b"1.1", parse.items))
    for piece in parse.body:
        exchange.response_data(piece)
    parse.body.clear()
    writer.write(b"".join(read) if len(read) > 1 else read[0])
    router.raw_out = True
    while not parse.done:
        if writer.transport.get_write_buffer_size() > chunk:
            await writer.drain()  # only when the caller is slower than the app
        data = await recv()
        if not data:
            raise _broken("the app closed the connection")
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise _broken(str(exc) or type(exc).__name__) from None
        for piece in parse.body:
            exchange.response_data(piece)
        parse.body.clear()
        if parse.extra:
            raise _broken("more than one response")
        writer.write(data)
    if parse.extra:
        raise _broken("more than one response")
    if writer.transport.get_write_buffer_size() > chunk:
        await writer.drain()
    return True
