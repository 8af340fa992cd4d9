"""The shared traffic record and replay client of tp_protocol against a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from tp_protocol import manager_pb2 as mpb
from tp_protocol.replay import replay_url, request_headers
from tp_protocol.traffic import REDACTED


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    auth = request.headers.get("Authorization", "")
    seen = ",".join(sorted(k.lower() for k in request.headers))
    return web.Response(status=201, body=f"auth={auth} seen {seen} body ".encode() + body,
                        headers={"Set-Cookie": "session=abc"})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


def test_replay_headers_drop_hop_by_hop_framing_and_redacted_values_then_apply_overrides(
        ) -> None:
    captured = [("Host", "web"), ("Connection", "keep-alive"), ("Content-Length", "3"),
                ("Authorization", REDACTED), ("X-Id", "me"), ("TE", "trailers")]
    sent = request_headers(captured, [("x-id", "you"), ("Authorization", "Bearer t")])
    assert sent == [("Host", "web"), ("x-id", "you"), ("Authorization", "Bearer t")]
    assert request_headers(captured, [], keep_host=False) == [("X-Id", "me")]


async def test_a_replay_to_a_url_is_recorded_with_bounded_bodies_and_redacted_credentials(
        server: int) -> None:
    # from a thread, as the notebook calls it (replay_url runs its own event loop)
    record = await asyncio.to_thread(
        replay_url, f"http://127.0.0.1:{server}", mpb.TrafficRecord(id="r1"),
        method="POST", path="/things", headers=[("Authorization", "Bearer t"), ("X-Id", "me")],
        body=b"hello", seconds=5.0, body_limit=13, redact=("authorization", "set-cookie"))
    assert record.error == ""
    assert (record.method, record.path, record.status) == ("POST", "/things", 201)
    # the server got the real credential; the row keeps it redacted
    assert record.response_body_prefix == b"auth=Bearer t"
    sent = {h.name.lower(): h.value for h in record.request_headers}
    assert sent["authorization"] == REDACTED and sent["x-id"] == "me"
    got = {h.name.lower(): h.value for h in record.response_headers}
    assert got["set-cookie"] == REDACTED
    assert record.request_size == 5 and record.request_body_prefix == b"hello"
    assert record.response_body_truncated and record.response_size > 13
    assert record.duration_ms >= record.time_to_first_byte_ms > 0


def test_a_replay_to_a_closed_port_says_why_in_the_record() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record = replay_url(f"http://127.0.0.1:{port}", mpb.TrafficRecord(id="r2"),
                        method="GET", path="/", headers=[], body=b"", seconds=2.0,
                        body_limit=8)
    assert record.status == 0
    assert record.error.startswith(f"replay to http://127.0.0.1:{port} failed")
