"""Unmatched requests on a port with personal intercepts go to the app byte for byte
(agent/rawpath.py), and everything that needs re-framing still gets it: real sockets,
the real traffic-manager, an app that records the bytes it got."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import h11
import pytest
from agent_fixtures import alice_routed, read_responses, running_agent
from agenttest import wait_for
from tp_cluster.agent.rawpath import Raw
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(60)

CHUNKED = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")


class RecordingApp:
    """An h11 app that keeps every byte it was sent; answers by path: /chunked (chunked),
    /close (`connection: close`), else `app METHOD PATH BODY` with a content-length."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.requests: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        request: Any = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                self.received += data
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.requests.append((request.method, request.target,
                                      list(request.headers), body))
                if request.target == b"/chunked":
                    conn.send(h11.Response(status_code=200, headers=[
                        (b"transfer-encoding", b"chunked")]))
                    conn.send(h11.EndOfMessage())
                    writer.write(CHUNKED)  # the framing the caller must see, as written
                else:
                    answer = b"app " + request.method + b" " + request.target + b" " + body
                    headers = [(b"content-length", str(len(answer)).encode())]
                    if request.target == b"/close":
                        headers.append((b"connection", b"close"))
                    writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
                    if request.method != b"HEAD":
                        writer.write(conn.send(h11.Data(data=answer)))
                    writer.write(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    writer.close()
                    return
                conn.start_next_cycle()
            else:
                writer.close()
                return


@pytest.fixture
async def routed(manager: Any, daemons: Any, local_server: Any
                 ) -> AsyncIterator[tuple[int, RecordingApp, Any]]:
    """(agent port, the app, alice) with alice's personal intercept `x-dev: alice`."""
    app = RecordingApp()
    async with alice_routed(manager, daemons, local_server, app.serve) as (port, alice):
        yield port, app, alice


async def test_two_pipelined_requests_reach_the_app_byte_for_byte_and_answer_in_order(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, _ = routed
    first = b"GET /one?a=1 HTTP/1.1\r\nHost: web\r\nX-Odd-Case:   Kept As Sent\r\n\r\n"
    second = (b"POST /two HTTP/1.1\r\nhost: web\r\ncontent-length: 5\r\n"
              b"content-type: text/plain\r\n\r\nhello")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first + second)
    (r1, b1, _), (r2, b2, _) = await read_responses(reader, 2)
    assert (r1.status_code, b1) == (200, b"app GET /one?a=1 ")
    assert (r2.status_code, b2) == (200, b"app POST /two hello")
    assert bytes(app.received) == first + second
    assert app.connections == 1
    writer.close()


async def test_two_hundred_pipelined_requests_in_one_write_are_answered_in_order(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, _ = routed
    sent = b"".join(b"GET /p%d HTTP/1.1\r\nhost: web\r\n\r\n" % i for i in range(200))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    bodies = [body for _, body, _ in await read_responses(reader, 200)]
    assert bodies == [b"app GET /p%d " % i for i in range(200)]
    assert bytes(app.received) == sent
    writer.close()


async def test_a_chunked_response_reaches_the_caller_as_the_app_framed_it_and_is_recorded(
        routed: tuple[int, RecordingApp, Any], manager: Any) -> None:
    port, _, alice = routed
    watch = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=alice.session, include_unmatched=True))
    await wait_for(lambda: any(s.traffic for s in manager.server.state.sessions.values()))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):  # and the keep-alive connection goes on after it
        writer.write(b"GET /chunked HTTP/1.1\r\nhost: web\r\nauthorization: Bearer s3cret\r\n"
                     b"\r\n")
        assert await asyncio.wait_for(reader.readexactly(len(CHUNKED)), 5) == CHUNKED
    writer.close()
    row = await asyncio.wait_for(watch.read(), 5)
    watch.cancel()
    assert (row.routed_to, row.method, row.path, row.status) == (
        pb.ROUTED_TO_CLUSTER, "GET", "/chunked", 200)
    assert (row.response_size, row.response_body_prefix) == (11, b"hello world")
    assert ("authorization", "[redacted]") in [(h.name, h.value) for h in row.request_headers]
    assert ("transfer-encoding", "chunked") in [(h.name, h.value)
                                                for h in row.response_headers]
    assert row.duration_ms >= row.time_to_first_byte_ms > 0
    assert row.time.seconds > 0


async def test_a_request_whose_head_and_chunked_body_arrive_in_several_reads_goes_whole(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, _ = routed
    pieces = [b"PUT /pie", b"ces HTTP/1.1\r\nhost: w", b"eb\r\ntransfer-encoding: chu",
              b"nked\r\n\r\n3\r\nabc", b"\r\n4\r\ndefg\r\n0\r", b"\n\r\n"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)  # space the writes so that the agent reads them apart
    [(response, body, _)] = await read_responses(reader, 1)
    assert (response.status_code, body) == (200, b"app PUT /pieces abcdefg")
    assert bytes(app.received) == b"".join(pieces)  # still chunked, as the caller framed it
    writer.close()


async def test_a_body_with_expect_100_continue_is_re_framed_without_the_expectation(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, _ = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PUT /up HTTP/1.1\r\nhost: web\r\ncontent-length: 4\r\n"
                 b"expect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 \r\n\r\n"
    writer.write(b"data")
    [(response, body, _)] = await read_responses(reader, 1)
    assert (response.status_code, body) == (200, b"app PUT /up data")
    assert b"expect" not in bytes(app.received).lower()
    writer.close()


async def test_an_app_that_closes_after_its_answer_does_not_close_the_callers_connection(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, _ = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /close HTTP/1.1\r\nhost: web\r\n\r\n")
    [(response, body, raw)] = await read_responses(reader, 1)
    assert (response.status_code, body) == (200, b"app GET /close ")
    assert b"connection" not in raw.lower()  # the app's hop-by-hop header stays on its hop
    writer.write(b"HEAD /after HTTP/1.1\r\nhost: web\r\n\r\n"
                 b"GET /last HTTP/1.1\r\nhost: web\r\n\r\n")
    (head, head_body, _), (last, last_body, _) = await read_responses(reader, 2, [b"HEAD", b"GET"])
    assert (head.status_code, head_body) == (200, b"")
    assert (last.status_code, last_body) == (200, b"app GET /last ")
    assert app.connections == 2
    writer.close()


async def test_a_matched_request_between_unmatched_ones_still_goes_to_its_developer(
        routed: tuple[int, RecordingApp, Any]) -> None:
    port, app, alice = routed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a HTTP/1.1\r\nhost: web\r\n\r\n"
                 b"GET /b HTTP/1.1\r\nhost: web\r\nx-dev: alice\r\n\r\n"
                 b"GET /c HTTP/1.1\r\nhost: web\r\n\r\n")
    bodies = [body for _, body, _ in await read_responses(reader, 3)]
    assert bodies == [b"app GET /a ", b"alice GET /b ", b"app GET /c "]
    assert [target for _, target, _, _ in app.requests] == [b"/a", b"/c"]
    assert alice.accepted == 1
    writer.close()


async def test_an_app_that_goes_away_before_answering_gives_a_502_with_the_reason(
        manager: Any, daemons: Any, local_server: Any) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with running_agent(manager, server.sockets[0].getsockname()[1]) as (agent, port):
        alice = await daemons("alice")
        await alice.intercept("web-alice", await local_server("alice"),
                              matches={"x-dev": "alice"})
        await wait_for(lambda: bool(agent.registry.on_port(port)))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nhost: web\r\n\r\n")
        [(response, body, _)] = await read_responses(reader, 1)
        assert response.status_code == 502
        assert body.startswith(b"bad HTTP from the app: ") and b"ConnectionClosed" in body
        assert (b"x-tp-error", b"1") in list(response.headers)
        writer.close()
    server.close()


def test_raw_hands_out_exactly_what_h11_consumed() -> None:
    conn = h11.Connection(h11.SERVER)
    raw = Raw()
    raw.feed(conn, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HT")
    assert isinstance(conn.next_event(), h11.Request)
    assert raw.take(conn) == b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n"
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    assert raw.take(conn) == b""
    conn.send(h11.Response(status_code=204, headers=[]))
    conn.send(h11.EndOfMessage())
    conn.start_next_cycle()
    raw.feed(conn, b"TP/1.1\r\nhost: x\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    assert raw.take(conn) == b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n"
