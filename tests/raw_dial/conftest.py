"""The raw dial tests that run in this process run on asyncio's event loop and on
uvloop's: the daemon and the traffic-manager run on uvloop (`connect.daemon_uvloop`,
`connect.manager_uvloop`), whose transports differ from asyncio's in when they write and
what they keep of a written buffer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
