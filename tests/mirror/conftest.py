"""Fixtures: the REAL traffic-manager on loopback, an app server, local servers, an
in-process traffic-agent and FakeDaemons (tests/agenttest.py), as tests/agent has them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from agenttest import FakeDaemon, free_port, wait_for
from aiohttp import web
from http_testing import http_server
from manager_testing import Manager, running_manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.agent.config import AgentConfig, PortConfig, ServicePort
from tp_cluster.agent.runtime import Agent
from tp_cluster.manager.dns import ClusterResolver


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    with fast_settings_for(local_dial_timeout=1.5, agent_reconnect_backoff_max=0.5,
                           agent_retire_idle=0.2, mirror_counters_interval=0.1) as settings:
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
async def agent(manager: Manager, app_port: int) -> AsyncIterator[Agent]:
    port = free_port()
    config = AgentConfig(
        name="web", namespace="demo", kind="Deployment", pod_name="web-7d9-abc",
        pod_ip="10.244.0.7", manager_address=f"127.0.0.1:{manager.port}",
        ports=(PortConfig("http", port, app_port, (ServicePort("http", 80),)),),
        mounts=(), app_container="app", app_env={}, listen_host="127.0.0.1")
    handle = Agent(config)
    await handle.start()
    await wait_for(handle.link.arrived.is_set, what="the agent to arrive")
    yield handle
    await handle.stop(grace=0.5)


@pytest.fixture
async def daemons(manager: Manager) -> AsyncIterator[Callable[..., Awaitable[FakeDaemon]]]:
    made: list[FakeDaemon] = []

    async def make(name: str = "alice") -> FakeDaemon:
        daemon = await FakeDaemon(manager, name).arrive(True)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        await daemon.close()
