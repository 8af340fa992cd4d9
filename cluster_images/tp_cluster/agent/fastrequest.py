"""The caller's plain request, parsed by llhttp (`httptools`) before h11 sees it.

The common unmatched request (a keep-alive GET: one whole bodiless request per read)
cost the agent an h11 parse (~70 us CPU under load, bench/agent_router.py) although its
bytes go to the app as read. `parse` takes only that case: the read holds exactly one
complete HTTP/1.1 request without a body, whose head ends the read and fits
`max_head`; anything else (a body, pipelining, a partial head, bytes llhttp refuses,
an `Upgrade`) returns None and h11 parses the read as before.

The router routes the `Request` as it would h11's event. When it does not go to the app
byte for byte (matched, mirrored, not `request_is_raw`) or something fails before the
response went out, the router first feeds the bytes to its h11 connection
(`HttpRouter.catch_up`), so every other path works on h11's view as before.
"""

from __future__ import annotations

import httptools


class Headers(list[tuple[bytes, bytes]]):
    """(lower-case name, value) pairs, as iterating h11's headers gives them."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        super().__init__((name.lower(), value) for name, value in raw)
        self.raw = raw

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        return self.raw


class Request:
    """The fields of h11.Request the router and its rows read."""

    __slots__ = ("headers", "http_version", "method", "target")

    def __init__(self, method: bytes, target: bytes, headers: Headers) -> None:
        self.method = method
        self.target = target
        self.http_version = b"1.1"
        self.headers = headers


class _Parse:
    __slots__ = ("begun", "body", "done", "items", "url")

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.begun = 0
        self.done = 0
        self.body = False

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.items.append((name, value.rstrip(b" \t")))  # h11 strips trailing whitespace

    def on_body(self, _body: bytes) -> None:
        self.body = True

    def on_message_complete(self) -> None:
        self.done += 1


def parse(data: bytes, max_head: int) -> Request | None:
    """The request when `data` is exactly one plain bodiless request, else None."""
    if len(data) > max_head or not data.endswith(b"\r\n\r\n") or data[:1] in (b"\r", b"\n"):
        return None
    state = _Parse()
    parser = httptools.HttpRequestParser(state)
    try:
        parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if (state.begun != 1 or state.done != 1 or state.body or not state.url
            or parser.get_http_version() != "1.1"):
        return None
    hosts = 0
    for name, _ in state.items:
        low = name.lower()
        if low in (b"content-length", b"transfer-encoding", b"upgrade"):
            return None  # framing and switches stay h11's to judge
        hosts += low == b"host"
    if hosts != 1:
        return None  # h11 answers 400 to a missing or repeated Host
    return Request(parser.get_method(), state.url, Headers(state.items))
