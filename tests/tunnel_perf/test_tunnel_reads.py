"""The traffic-manager's tunnel reads: few large messages under load, bounded buffering.

Real loopback TCP connections, no cluster: `dial_out` is driven with an in-memory
request iterator and a recording `write`, as the gRPC servicer drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tp_cluster.manager import tunnel
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(30)

CHUNK = 1024 * 1024


async def _serve(payload: bytes) -> tuple[asyncio.Server, int, asyncio.Event]:
    """A server that sends `payload` to each connection, then half-closes."""
    sent = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        sent.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], sent


async def _requests(done: asyncio.Event) -> AsyncIterator[Any]:
    await done.wait()
    message = pb.TunnelMessage()
    message.close_write.SetInParent()
    yield message


async def test_a_busy_connection_arrives_intact_in_few_large_messages() -> None:
    payload = os.urandom(32 * 1024 * 1024)
    server, port, _ = await _serve(payload)
    got: list[Any] = []
    finished = asyncio.Event()

    async def write(message: Any) -> None:
        got.append(message)
        if message.WhichOneof("kind") == "close_write":
            finished.set()
        await asyncio.sleep(0)

    try:
        await asyncio.wait_for(tunnel.dial_out(
            pb.Dial(protocol="tcp", ip="127.0.0.1", port=port), _requests(finished), write,
            dial_timeout=5, chunk=CHUNK), 20)
    finally:
        server.close()
    kinds = [m.WhichOneof("kind") for m in got]
    assert kinds[0] == "opened" and kinds[-1] == "close_write"
    data = [m.data for m in got if m.WhichOneof("kind") == "data"]
    assert hashlib.sha256(b"".join(data)).digest() == hashlib.sha256(payload).digest()
    assert max(len(d) for d in data) <= CHUNK
    # Kernel reads are at most 256 KiB; joining what waits keeps the message count low.
    assert len(data) <= len(payload) // (64 * 1024)


async def test_a_stalled_tunnel_pauses_reading_instead_of_buffering_everything() -> None:
    payload = os.urandom(64 * 1024 * 1024)
    server, port, sent = await _serve(payload)
    release = asyncio.Event()
    first_data = asyncio.Event()
    received = 0
    finished = asyncio.Event()

    async def write(message: Any) -> None:
        nonlocal received
        kind = message.WhichOneof("kind")
        if kind == "data":
            received += len(message.data)
            first_data.set()
            await release.wait()  # the client side of the tunnel stops reading
        elif kind == "close_write":
            finished.set()

    task = asyncio.create_task(tunnel.dial_out(
        pb.Dial(protocol="tcp", ip="127.0.0.1", port=port), _requests(finished), write,
        dial_timeout=5, chunk=CHUNK), name="stalled-dial-out")
    try:
        await asyncio.wait_for(first_data.wait(), 10)
        # The server cannot finish sending: the manager stopped reading at its high-water
        # mark, so the rest stays in socket buffers rather than in the manager's memory.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent.wait(), 0.5)
        assert not sent.is_set()
        release.set()
        await asyncio.wait_for(task, 20)
        assert sent.is_set() and received == len(payload)
    finally:
        task.cancel()
        server.close()
