"""The one way tests wait: poll a condition until it holds, never sleep a fixed time.

`wait_for` (threads, subprocesses, the sandbox) and `wait_until` (inside an event loop)
return the condition's first truthy value, or fail with what was awaited and for how long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError, TimeoutError):
    """The condition did not hold in time: a test failure, and a timeout for callers that
    expect one (`pytest.raises(TimeoutError)` to show that something does NOT happen)."""


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05,
             ignore: Callable[[Exception], bool] | None = None) -> Any:
    """Poll `condition` until truthy (returned); an exception for which `ignore` answers
    True counts as "not yet". Fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as e:
            if ignore is None or not ignore(e):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def wait_until(condition: Callable[[], Any], within: float = 5.0,
                     what: str = "condition", interval: float = 0.01) -> Any:
    """`wait_for` for code on an event loop: the loop keeps running between polls."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)
