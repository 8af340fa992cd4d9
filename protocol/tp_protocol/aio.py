"""Generic asyncio plumbing shared by the daemon and the cluster images (stdlib only)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


def spawn(coro: Awaitable[T], name: str, log: logging.Logger) -> asyncio.Task[T]:
    """A named task whose failure is logged on `log` (the caller's module), not lost."""
    task = asyncio.ensure_future(coro)
    task.set_name(name)

    def report(t: asyncio.Task[T]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("task %s failed", name, exc_info=t.exception())

    task.add_done_callback(report)
    return task


async def wait_at_most(awaitable: Awaitable[object], seconds: float) -> bool:
    """Await `awaitable` for at most `seconds`; False when they ran out first. Unlike
    `asyncio.wait_for` on Python 3.11, a cancellation that arrives as the awaitable
    completes is never swallowed (CPython gh-86296), so a loop built on this one stops
    when its task is cancelled."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


async def until_stopped(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Return when the process gets one of `signals` (a server's main loop waits here)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


class DatagramReplies(asyncio.DatagramProtocol):
    """A UDP server that answers each datagram with what `reply` returns (None: no
    answer); each query runs in its own task, started by `start` (named and guarded by
    the owner), so a slow answer never holds up the next datagram."""

    def __init__(self, reply: Callable[[bytes], Awaitable[bytes | None]],
                 start: Callable[[Awaitable[None], str], object], log: logging.Logger,
                 name: str) -> None:
        self._reply = reply
        self._start = start
        self._log = log
        self._name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self._start(self._answer(data, addr), self._name)

    async def _answer(self, data: bytes, addr: tuple[str | int, int]) -> None:
        try:
            answer = await self._reply(data)
        except Exception:
            self._log.exception("%s failed", self._name)
            return
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)
