"""The router's llhttp short cuts (agent/fastrequest.py, agent/fastresponse.py) change
nothing a caller, the app or a traffic row can see: real sockets, the real
traffic-manager, an app that answers scripted bytes and keeps what it was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import h11
import pytest
from agent_fixtures import alice_routed, read_responses
from agenttest import wait_for
from tp_cluster.agent import fastrequest
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(60)

ANSWERS = {
    b"/plain": b"HTTP/1.1 200 OK\r\nX-Trail: padded \t\r\ncontent-length: 5\r\n\r\nhello",
    b"/hints": (b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    b"/old": b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold",
    b"/broken": b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
}


class ScriptedApp:
    """Answers each request head with ANSWERS[path] as written (and closes after /broken)."""

    def __init__(self) -> None:
        self.received = bytearray()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while data := await reader.read(65536):
            self.received += data
            buffer += data
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                target = buffer.split(b" ", 2)[1].partition(b"?")[0]
                buffer = buffer[end + 4:]
                writer.write(ANSWERS[target])
                if target == b"/broken":
                    writer.close()
                    return
        writer.close()


@pytest.fixture
async def routed(manager: Any, daemons: Any, local_server: Any
                 ) -> AsyncIterator[tuple[int, ScriptedApp, Any]]:
    """(agent port, the app, alice) with alice's personal intercept `x-dev: alice`."""
    app = ScriptedApp()
    async with alice_routed(manager, daemons, local_server, app.serve) as (port, alice):
        yield port, app, alice


async def _response(reader: asyncio.StreamReader, method: bytes = b"GET") -> tuple[Any, bytes]:
    [(head, body, _)] = await read_responses(reader, methods=[method])
    return head, body


async def _rows(manager: Any, alice: Any) -> Any:
    watch = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=alice.session, include_unmatched=True))
    await wait_for(lambda: any(s.traffic for s in manager.server.state.sessions.values()))
    return watch


async def test_a_plain_get_goes_byte_for_byte_and_its_row_reads_as_h11_would_have_it(
        routed: tuple[int, ScriptedApp, Any], manager: Any) -> None:
    port, app, alice = routed
    watch = await _rows(manager, alice)
    sent = b"GET /plain?q=1 HTTP/1.1\r\nHost: web\r\nX-Odd-Case: trailing  \r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):  # one request per read, keep-alive
        writer.write(sent)
        head, body = await _response(reader)
        assert (head.status_code, body) == (200, b"hello")
        assert (b"x-trail", b"padded") in list(head.headers)
    writer.close()
    assert bytes(app.received) == sent * 3
    row = await asyncio.wait_for(watch.read(), 5)
    watch.cancel()
    assert (row.routed_to, row.method, row.path, row.http_version, row.status, row.reason) == (
        pb.ROUTED_TO_CLUSTER, "GET", "/plain?q=1", "1.1", 200, "OK")
    assert ("X-Odd-Case", "trailing") in [(h.name, h.value) for h in row.request_headers]
    assert ("X-Trail", "padded") in [(h.name, h.value) for h in row.response_headers]
    assert (row.response_size, row.response_body_prefix, row.error) == (5, b"hello", "")
    assert row.duration_ms >= row.time_to_first_byte_ms > 0


async def test_matched_requests_each_read_alone_between_unmatched_ones_reach_the_developer(
        routed: tuple[int, ScriptedApp, Any]) -> None:
    port, app, _ = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bodies = []
    for target, dev in ((b"/plain", b"bob"), (b"/b", b"alice"), (b"/plain", b"bob"),
                        (b"/d", b"alice")):
        writer.write(b"GET " + target + b" HTTP/1.1\r\nhost: web\r\nx-dev: " + dev + b"\r\n\r\n")
        bodies.append((await _response(reader))[1])
    assert bodies == [b"hello", b"alice GET /b ", b"hello", b"alice GET /d "]
    assert bytes(app.received).count(b"GET /plain") == 2
    assert b"alice" not in bytes(app.received)
    writer.close()


async def test_answers_llhttp_leaves_to_h11_still_arrive_on_the_same_connection(
        routed: tuple[int, ScriptedApp, Any]) -> None:
    port, _, _ = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for target, want in ((b"/hints", b"ok"), (b"/old", b"old"), (b"/plain", b"hello")):
        writer.write(b"GET " + target + b" HTTP/1.1\r\nhost: web\r\n\r\n")
        head, body = await _response(reader)
        assert (head.status_code, head.http_version, body) == (200, b"1.1", want)
    writer.close()


async def test_a_request_without_host_still_gets_h11s_400(
        routed: tuple[int, ScriptedApp, Any]) -> None:
    port, app, _ = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /plain HTTP/1.1\r\nx-dev: bob\r\n\r\n")
    head, _ = await _response(reader)
    assert head.status_code == 400
    assert app.received == b""
    writer.close()


async def test_an_app_that_breaks_off_mid_body_resets_the_caller_and_the_row_says_why(
        routed: tuple[int, ScriptedApp, Any], manager: Any) -> None:
    port, _, alice = routed
    watch = await _rows(manager, alice)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /broken HTTP/1.1\r\nhost: web\r\n\r\n")
    got = b""
    with contextlib.suppress(ConnectionResetError):  # the caller's connection ends
        while data := await asyncio.wait_for(reader.read(65536), 5):
            got += data
    assert got.endswith(b"\r\n\r\nabc")  # the head and the 3 bytes there were, no more
    row = await asyncio.wait_for(watch.read(), 5)
    watch.cancel()
    assert (row.path, row.status, row.response_size) == ("/broken", 200, 3)
    assert "bad HTTP from the app" in row.error and "closed the connection" in row.error
    writer.close()


@pytest.fixture
async def developer(manager: Any, daemons: Any, local_server: Any
                    ) -> AsyncIterator[tuple[int, ScriptedApp, Any]]:
    """(agent port, alice's local server, alice): her local side answers scripted bytes too."""
    app, local = ScriptedApp(), ScriptedApp()
    mine = await asyncio.start_server(local.serve, "127.0.0.1", 0)
    try:
        async with alice_routed(manager, daemons, local_server, app.serve,
                                mine.sockets[0].getsockname()[1]) as (port, alice):
            yield port, local, alice
    finally:
        mine.close()


async def test_a_matched_plain_get_reaches_the_developer_byte_for_byte_with_a_local_row(
        developer: tuple[int, ScriptedApp, Any], manager: Any) -> None:
    port, local, alice = developer
    watch = await _rows(manager, alice)
    sent = b"GET /plain?q=1 HTTP/1.1\r\nHost: web\r\nx-dev: alice\r\nX-Odd-Case: trailing  \r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):  # one request per read, keep-alive
        writer.write(sent)
        head, body = await _response(reader)
        assert (head.status_code, body) == (200, b"hello")
    writer.close()
    assert bytes(local.received) == sent * 3  # as the caller wrote it, not re-serialised
    row = await asyncio.wait_for(watch.read(), 5)
    watch.cancel()
    assert (row.routed_to, row.intercept_name, row.method, row.path, row.status) == (
        pb.ROUTED_TO_LOCAL, "web-alice", "GET", "/plain?q=1", 200)
    assert ("X-Odd-Case", "trailing") in [(h.name, h.value) for h in row.request_headers]
    assert ("X-Trail", "padded") in [(h.name, h.value) for h in row.response_headers]
    assert (row.response_size, row.response_body_prefix, row.error) == (5, b"hello", "")


async def test_local_answers_llhttp_leaves_to_h11_arrive_after_a_request_sent_as_read(
        developer: tuple[int, ScriptedApp, Any]) -> None:
    port, local, _ = developer
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for target, want in ((b"/hints", b"ok"), (b"/old", b"old"), (b"/plain", b"hello"),
                         (b"/hints", b"ok")):
        writer.write(b"GET " + target + b" HTTP/1.1\r\nhost: web\r\nx-dev: alice\r\n\r\n")
        head, body = await _response(reader)
        assert (head.status_code, head.http_version, body) == (200, b"1.1", want)
    writer.close()
    assert bytes(local.received).count(b"x-dev: alice") == 4


@pytest.mark.parametrize("data", [
    b"GET /a HTTP/1.0\r\nhost: web\r\n\r\n",
    b"POST /a HTTP/1.1\r\nhost: web\r\ncontent-length: 0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nhost: web\r\n\r\nGET /b HTTP/1.1\r\nhost: web\r\n\r\n",
    b"GET /a HTTP/1.1\r\nhost: web\r\n",
    b"GET /a HTTP/1.1\r\nhost: web\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    b"GET /a HTTP/1.1\r\nhost: web\r\nhost: other\r\n\r\n",
    b"GET /a HTTP/1.1\r\nhost: web\r\n folded\r\n\r\n",
    b"\r\nGET /a HTTP/1.1\r\nhost: web\r\n\r\n",
])
def test_the_fast_parser_leaves_every_request_but_one_whole_bodiless_head_to_h11(
        data: bytes) -> None:
    assert fastrequest.parse(data, 16384) is None


def test_the_fast_parser_reads_a_head_as_h11_does() -> None:
    data = b"GET /a?b=1 HTTP/1.1\r\nHost:  web \r\nX-Dev:alice\t\r\n\r\n"
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    want = conn.next_event()
    got = fastrequest.parse(data, 16384)
    assert got is not None
    assert (got.method, got.target, got.http_version) == (
        want.method, want.target, want.http_version)
    assert list(got.headers) == list(want.headers)
    assert got.headers.raw_items() == list(want.headers.raw_items())
    assert fastrequest.parse(data, len(data) - 1) is None  # over max_head: h11's 431
