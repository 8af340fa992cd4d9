"""Byte pumps, once: the daemon's splices, the agent's pipes and the manager's tunnels.

A `Stream` is one bidirectional byte stream (a manager Tunnel, a port-forward
WebSocket, a TCP connection). `run_pair` runs the two directions of a relay as named
tasks: a clean EOF one way waits for the other, the first failure cancels the other
and propagates, so one broken side never leaves the other pumping forever. `splice`
relays a local TCP connection and a `Stream` with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
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
    """A `Stream` over a plain TCP connection."""

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


async def run_pair(a: Awaitable[None], b: Awaitable[None], names: tuple[str, str]) -> None:
    """Run both pumps to the end; the first failure cancels the other and propagates."""
    tasks = [asyncio.ensure_future(a), asyncio.ensure_future(b)]
    for task, name in zip(tasks, names, strict=True):
        task.set_name(name)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 stream: Stream | ViewStream, name: str) -> None:
    """Copy both ways until both directions are done (or either fails), then close both."""

    async def upstream() -> None:
        while data := await reader.read(CHUNK):
            await stream.send(data)
        await stream.close_write()

    async def downstream() -> None:
        pump = getattr(stream, "pump_to", None)  # a stream that writes `writer` itself
        if pump is not None:
            await pump(writer)
        else:
            while data := await stream.recv():
                writer.write(data)
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    try:
        await run_pair(upstream(), downstream(), (f"{name}-up", f"{name}-down"))
    except Exception as exc:  # either side breaking ends this connection only
        log.debug("%s ended: %r", name, exc)
    finally:
        await stream.close()
        writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await writer.wait_closed()
