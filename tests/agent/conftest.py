"""Fixtures: the REAL traffic-manager on loopback, an app server, local servers, the agent,
and FakeDaemons (tests/agent_fixtures.py, as tests/mirror).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agent_fixtures import FAST, app_port, daemons, local_server, manager, running_agent, tiny_app
from agenttest import free_port
from manager_testing import Manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.agent.config import MountConfig
from tp_cluster.agent.runtime import Agent

__all__ = ["AgentHandle", "agent", "app_port", "daemons", "fast_settings", "free_local_port",
           "local_server", "manager", "tiny_app"]


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    """Short TTL and timeouts, restored afterwards (settings are process-wide)."""
    with fast_settings_for(**FAST) as settings:
        yield settings


@pytest.fixture
def free_local_port() -> int:
    """A loopback port nobody listens on (a local destination that is down)."""
    return free_port()


@dataclasses.dataclass
class AgentHandle:
    agent: Agent
    port: int
    manager: Manager

    def manager_state(self) -> Any:
        return self.manager.server.state


@pytest.fixture
async def agent(manager: Manager, app_port: int) -> AsyncIterator[AgentHandle]:
    async with running_agent(manager, app_port, mounts=(MountConfig("data", "/var/data", True),),
                             app_env={"COLOR": "blue"}) as (handle, port):
        yield AgentHandle(handle, port, manager)
