"""The agent's overhead on unmatched requests (target: under 1 ms at the median)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from agent_fixtures import request_times_ms
from agenttest import free_port, wait_for
from tp_cluster.agent.config import AgentConfig, PortConfig
from tp_cluster.agent.runtime import Agent

pytestmark = pytest.mark.timeout(60)
REQUEST = b"GET /x HTTP/1.1\r\nhost: web\r\nx-dev: nobody\r\n\r\n"


async def _median_ms(port: int) -> float:
    return statistics.median(await request_times_ms(port, 300, REQUEST))


async def test_unmatched_requests_cost_under_a_millisecond_at_the_median(
        tiny_app: int, manager: Any, daemons: Any, free_local_port: int) -> None:
    port = free_port()
    agent = Agent(AgentConfig(
        name="web", namespace="demo", kind="Deployment", pod_name="web-1", pod_ip="",
        manager_address=f"127.0.0.1:{manager.port}", ports=(PortConfig("http", port, tiny_app),),
        listen_host="127.0.0.1"))
    await agent.start()
    try:
        direct = await _median_ms(tiny_app)
        fast = await _median_ms(port)
        alice = await daemons("alice")
        await alice.intercept("web-alice", free_local_port, matches={"x-dev": "alice"})
        await wait_for(lambda: bool(agent.registry.on_port(port)))
        parsed = await _median_ms(port)
    finally:
        await agent.stop(grace=0.5)
    print(f"median per request: direct {direct:.3f} ms, agent fast path {fast:.3f} ms, "
          f"agent with a personal intercept (unmatched) {parsed:.3f} ms")
    assert fast - direct < 1.0
    assert parsed - direct < 1.0
