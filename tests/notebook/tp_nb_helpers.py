"""Helpers shared by the notebook tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def tp_threads() -> list[str]:
    """Names of the threads tp-jupyter started (they all begin with `tp-`)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("tp-"))


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until truthy (returned); fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
