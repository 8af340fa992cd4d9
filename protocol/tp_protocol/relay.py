"""The `Relay` stream's shared piece (manager.proto, "Relay rules"): an `Outbox` of
frames for one stream, written in batches by one pump task.

Many connections share a Relay stream, and a grpc.aio call takes one write at a time:
each side puts frames in its stream's outbox (never waiting for the network) and the
pump sends whatever waits as one `RelayBatch`. Under load a batch carries many frames,
so the per-message cost of gRPC (and of the port-forward's WebSocket frames) is paid
once for all of them. `room` is the back-pressure: a producer waits while more than
`limit` bytes of data are still unsent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tp_protocol import manager_pb2 as mpb


def frame_error(conn: int, code: str, message: str) -> mpb.RelayFrame:
    return mpb.RelayFrame(conn=conn, error=mpb.TunnelError(code=code, message=message))


def frame_close_write(conn: int) -> mpb.RelayFrame:
    frame = mpb.RelayFrame(conn=conn)
    frame.close_write.SetInParent()
    return frame


class Outbox:
    """Frames waiting for one Relay stream, in order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: list[Any] = []
        self._bytes = 0
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False

    def put(self, frame: Any) -> None:
        self._frames.append(frame)
        self._bytes += len(frame.data)
        if self._bytes > self.limit:
            self._drained.clear()
        self._ready.set()

    async def room(self) -> None:
        """Wait while more than `limit` bytes are queued (returns at once when closed)."""
        while not self._drained.is_set() and not self.closed:
            await self._drained.wait()

    async def pump(self, write: Callable[[Any], Awaitable[None]]) -> None:
        """Send batches until cancelled or the write fails (then `closed`)."""
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                frames, self._frames = self._frames, []
                if frames:
                    await write(mpb.RelayBatch(frames=frames))
                    self._bytes -= sum(len(f.data) for f in frames)
                    if self._bytes <= self.limit:
                        self._drained.set()
        finally:
            self.closed = True
            self._drained.set()


def take_rows(queue: deque[Any], max_bytes: int) -> list[Any]:
    """Pop the queued messages (traffic rows) that fit in one batch of about `max_bytes`
    (at least one), oldest first: one gRPC message carries them all."""
    rows: list[Any] = []
    size = 0
    while queue:
        row_size = queue[0].ByteSize()  # upb serialises to measure: once per row
        if rows and size + row_size > max_bytes:
            break
        rows.append(queue.popleft())
        size += row_size
    return rows
