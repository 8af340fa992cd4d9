"""Helpers shared by the notebook tests (tests/ is on sys.path: `pythonpath` in pyproject.toml)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sandbox_testing


def tp_threads() -> list[str]:
    """Names of the threads tp-jupyter started (they all begin with `tp-`)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("tp-"))


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until truthy (returned); fail with `what` after `timeout` seconds.

    The shared poller, at a short interval: these conditions are in-process and quick.
    """
    return sandbox_testing.wait_for(condition, timeout, what, interval=0.02)
