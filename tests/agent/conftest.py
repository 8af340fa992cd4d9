"""Fixtures: the REAL traffic-manager on loopback, an app server, local servers, the agent,
and FakeDaemons (see agenttest.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from agenttest import FakeDaemon, free_port, wait_for
from aiohttp import web
from http_testing import http_server
from manager_testing import Manager, running_manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.agent.config import AgentConfig, MountConfig, PortConfig, ServicePort
from tp_cluster.agent.runtime import Agent
from tp_cluster.manager.dns import ClusterResolver


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    """Short TTL and timeouts, restored afterwards (settings are process-wide)."""
    with fast_settings_for(local_dial_timeout=1.5, agent_reconnect_backoff_max=0.5,
                           agent_retire_idle=0.2) as settings:
        yield settings


@pytest.fixture
async def manager(fast_settings: Any) -> AsyncIterator[Manager]:
    async with running_manager(ClusterResolver("127.0.0.1", "cluster.local", 1.0),
                               grace=0.5) as manager:
        yield manager


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    runner, port = await http_server("app")
    yield port
    await runner.cleanup()


@pytest.fixture
async def local_server() -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    runners: list[web.AppRunner] = []

    async def start(name: str) -> int:
        runner, port = await http_server(name)
        runners.append(runner)
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


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
    port = free_port()
    config = AgentConfig(
        name="web", namespace="demo", kind="Deployment", pod_name="web-7d9-abc",
        pod_ip="10.244.0.7", manager_address=f"127.0.0.1:{manager.port}",
        ports=(PortConfig("http", port, app_port, (ServicePort("http", 80),)),),
        mounts=(MountConfig("data", "/var/data", True),), app_container="app",
        app_env={"COLOR": "blue"}, listen_host="127.0.0.1")
    handle = Agent(config)
    await handle.start()
    await wait_for(handle.link.arrived.is_set, what="the agent to arrive")
    yield AgentHandle(handle, port, manager)
    await handle.stop(grace=0.5)


@pytest.fixture
async def daemons(manager: Manager) -> AsyncIterator[Callable[..., Awaitable[FakeDaemon]]]:
    made: list[FakeDaemon] = []

    async def make(name: str = "alice", remain: bool = True) -> FakeDaemon:
        daemon = await FakeDaemon(manager, name).arrive(remain)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        await daemon.close()
