"""The raw dial's data path on loopback, end to end as in direct connect: a local client
-> the daemon's splice (`tp_protocol.pumps.splice`, as the transparent proxy runs it) ->
a raw dial (real TLS 1.3, the pinned certificate) -> the manager's listener ->
`rawtls.splice_tcp` -> a TCP server standing in for the pod. Large transfers arrive
byte-exact both ways, each side's EOF is a half-close on the other, a stalled reader
stops the manager reading from the pod, and a reset pod ends the laptop's connection;
on asyncio's event loop and on uvloop's (this folder's conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from raw_dial_testing import raw_ends
from tp_cluster.manager.rawdial import RawDials
from tp_daemon.rawdial import RawDialer
from tp_protocol.pumps import READ_BUFFER, splice
from tp_protocol.settings import get_settings

pytestmark = pytest.mark.timeout(60)



Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Path:
    """A pod server behind the manager and the daemon's local port in front of it."""

    local_port: int
    raw: RawDials
    dialer: RawDialer


@contextlib.asynccontextmanager
async def _path(pod: Handler) -> AsyncIterator[Path]:
    async with raw_ends("raw-splice-test", get_settings().connect) as ends:
        pod_server = await asyncio.start_server(pod, "127.0.0.1", 0)
        pod_port = pod_server.sockets[0].getsockname()[1]
        raw, dialer, session = ends.raw, ends.dialer, ends.session

        async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stream = await dialer.dial(session, "127.0.0.1", pod_port)
            assert stream is not None
            await splice(reader, writer, stream, "test")

        local = await asyncio.start_server(proxy, "127.0.0.1", 0, limit=READ_BUFFER)
        try:
            yield Path(local.sockets[0].getsockname()[1], raw, dialer)
        finally:
            local.close()
            pod_server.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while data := await reader.read(1 << 20):
        parts.append(data)
    return b"".join(parts)


async def test_a_large_download_arrives_byte_exact_and_the_upload_goes_on_after_its_eof(
        ) -> None:
    payload = os.urandom(48 * 1024 * 1024)
    heard: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()               # the pod is done sending ...
        heard.set_result(await _read_all(reader))  # ... and still hears the client
        writer.close()

    async with _path(pod) as path:
        reader, writer = await asyncio.open_connection("127.0.0.1", path.local_port)
        got = await asyncio.wait_for(_read_all(reader), 30)
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        # after the pod's EOF reached us, our side still sends, then half-closes
        writer.write(b"thanks, all of it")
        writer.write_eof()
        assert await asyncio.wait_for(heard, 10) == b"thanks, all of it"
        writer.close()
        assert (path.dialer.raw_dials, path.raw.dials) == (1, 1)


async def test_a_large_upload_arrives_byte_exact_and_the_answer_comes_after_its_eof(
        ) -> None:
    payload = os.urandom(48 * 1024 * 1024)

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest = hashlib.sha256(await _read_all(reader)).hexdigest()  # until the EOF
        writer.write(digest.encode())
        await writer.drain()
        writer.close()

    async with _path(pod) as path:
        reader, writer = await asyncio.open_connection("127.0.0.1", path.local_port)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(_read_all(reader), 30)
        writer.close()
        assert answer == hashlib.sha256(payload).hexdigest().encode()


async def test_a_client_that_stops_reading_stops_the_manager_reading_from_the_pod() -> None:
    payload = os.urandom(160 * 1024 * 1024)  # far more than the socket buffers of 3 hops
    sent = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        sent.set()
        writer.close()

    async with _path(pod) as path:
        sock = socket.create_connection(("127.0.0.1", path.local_port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        first = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert first
        # nobody reads: the pod cannot finish, so the bytes wait in socket buffers along
        # the way, not in the manager's or the daemon's memory
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent.wait(), 1.0)
        assert not sent.is_set()
        rest = await asyncio.wait_for(_read_all(reader), 40)
        writer.close()
        assert sent.is_set()
        assert hashlib.sha256(first + rest).digest() == hashlib.sha256(payload).digest()


async def test_a_pod_that_resets_mid_stream_ends_the_laptops_connection() -> None:
    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(os.urandom(4 * 1024 * 1024))
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset, not an EOF

    async with _path(pod) as path:
        reader, writer = await asyncio.open_connection("127.0.0.1", path.local_port)
        got = 0
        with contextlib.suppress(ConnectionError):
            while data := await asyncio.wait_for(reader.read(1 << 20), 10):
                got += len(data)
        writer.close()
        # the connection ended (no hang); what came before the reset may be short
        assert got <= 4 * 1024 * 1024

