"""Running the two directions of a relay as a pair (agent pipes, manager tunnels).

Each direction is its own named task; the first failure cancels the other and
propagates, so one broken side never leaves the other pumping forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


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
