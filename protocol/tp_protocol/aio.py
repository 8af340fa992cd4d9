"""Generic asyncio plumbing shared by the daemon and the cluster images (stdlib only)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

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
