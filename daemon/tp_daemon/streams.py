"""Byte streams and the splice between a local TCP connection and a remote stream.

A `Stream` is one bidirectional byte stream to somewhere in the cluster (a `Tunnel`
through the manager, a port-forward WebSocket, or a direct TCP connection in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
"""Read size of local sockets: large reads keep per-message overhead (gRPC, WS) low."""

READ_BUFFER = 4 * CHUNK
"""StreamReader limit of local sockets, so reads of CHUNK bytes are not capped at 64 KiB."""


class Stream(Protocol):
    """One bidirectional byte stream."""

    async def recv(self) -> bytes:
        """Next chunk; b"" once the remote side is done sending."""
        ...

    async def send(self, data: bytes) -> None: ...

    async def close_write(self) -> None:
        """Tell the remote side nothing more will be sent (half-close where possible)."""
        ...

    async def close(self) -> None: ...


class ViewStream(Protocol):
    """A `Stream` whose chunks may be views into received frames (spliced, never kept)."""

    async def recv(self) -> bytes | memoryview: ...

    async def send(self, data: bytes) -> None: ...

    async def close_write(self) -> None: ...

    async def close(self) -> None: ...


class TcpStream:
    """A `Stream` over a plain TCP connection (direct dialing, tests, benchmarks)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> TcpStream:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_BUFFER)
        return cls(reader, writer)

    async def recv(self) -> bytes:
        return await self._reader.read(CHUNK)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close_write(self) -> None:
        if self._writer.can_write_eof():
            with contextlib.suppress(OSError):
                self._writer.write_eof()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 stream: Stream | ViewStream, name: str) -> None:
    """Copy both ways until both directions are done (or either fails), then close both."""

    async def upstream() -> None:
        while data := await reader.read(CHUNK):
            await stream.send(data)
        await stream.close_write()

    async def downstream() -> None:
        while data := await stream.recv():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    up = asyncio.create_task(upstream(), name=f"{name}-up")
    down = asyncio.create_task(downstream(), name=f"{name}-down")
    try:
        # Either direction failing ends the connection; a clean EOF one way waits for the other.
        pending: set[asyncio.Task[None]] = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    log.debug("%s: %s ended: %r", name, task.get_name(), exc)
                    for other in pending:
                        other.cancel()
                    pending = set()
                    break
    finally:
        for task in (up, down):
            if not task.done():
                task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        await stream.close()
        writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await writer.wait_closed()


async def close_server(server: asyncio.Server | None, conns: set[asyncio.Task[None]],
                       wait_closed: float = 2.0) -> None:
    """Stop a local listener: no new connections, cancel the accepted ones (their tasks
    are in `conns`), then wait at most `wait_closed` s for the server to be closed."""
    if server is not None:
        server.close()
    for task in list(conns):
        task.cancel()
    await asyncio.gather(*conns, return_exceptions=True)
    if server is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), wait_closed)
