"""Fixtures: the REAL traffic-manager on loopback, an app server, local servers, an
in-process traffic-agent and FakeDaemons (tests/agent_fixtures.py, as tests/agent)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agent_fixtures import FAST, app_port, daemons, local_server, manager, running_agent, tiny_app
from manager_testing import Manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.agent.runtime import Agent

__all__ = ["agent", "app_port", "daemons", "fast_settings", "local_server", "manager",
           "tiny_app"]


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    with fast_settings_for(**FAST, mirror_counters_interval=0.1) as settings:
        yield settings


@pytest.fixture
async def agent(manager: Manager, app_port: int) -> AsyncIterator[Agent]:
    async with running_agent(manager, app_port) as (handle, _port):
        yield handle
