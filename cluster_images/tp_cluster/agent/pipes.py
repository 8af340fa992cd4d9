"""Byte pumps: TCP<->TCP (the unintercepted fast path) and TCP<->Tunnel (global intercepts).

Each direction is its own task; EOF becomes a half-close on the other side, so
protocols that half-close keep working. A reset or a broken tunnel aborts both
sides (the caller sees a reset, as it would from the real destination).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tp_protocol.pumps import run_pair

from tp_cluster.agent import TunnelFailed
from tp_cluster.agent.tunnel import AgentTunnel

Tap = Callable[[bytes], None]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: int,
                tap: Tap | None) -> None:
    while data := await reader.read(chunk):
        if tap:
            tap(data)
        writer.write(data)
        if writer.transport.get_write_buffer_size() > chunk:
            await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def splice_streams(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                         b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                         chunk: int, name: str, *, tap_up: Tap | None = None,
                         tap_down: Tap | None = None) -> None:
    """Relay a<->b until both directions ended; resets abort both. Taps see a->b / b->a."""
    clean = False
    try:
        await run_pair(_pump(a[0], b[1], chunk, tap_up), _pump(b[0], a[1], chunk, tap_down),
                       (f"{name}-up", f"{name}-down"))
        clean = True
    except OSError:
        pass
    finally:
        for writer in (a[1], b[1]):
            if not clean:
                writer.transport.abort()
            writer.close()


async def splice_tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        tunnel: AgentTunnel, chunk: int, name: str, *,
                        tap_up: Tap | None = None, tap_down: Tap | None = None) -> None:
    """Relay a TCP connection through a tunnel; taps see a copy of each direction."""

    async def up() -> None:
        while data := await reader.read(chunk):
            if tap_up:
                tap_up(data)
            await tunnel.send(data)
        await tunnel.close_write()

    async def down() -> None:
        while data := await tunnel.recv():
            if tap_down:
                tap_down(data)
            writer.write(data)
            await writer.drain()
        if tap_down:
            tap_down(b"")
        if writer.can_write_eof():
            writer.write_eof()

    clean = False
    try:
        await run_pair(up(), down(), (f"{name}-up", f"{name}-down"))
        clean = True
    except (OSError, TunnelFailed):
        pass
    finally:
        if not clean:
            tunnel.abort()
            writer.transport.abort()
        else:
            tunnel.abort()  # both sides closed: release the call
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
