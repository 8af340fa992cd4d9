"""What a mirror costs the caller, in-process (agent, manager and the copy's receiver share
one event loop, so this is an upper bound; bench/mirror.py measures it in the sandbox)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from agent_fixtures import request_times_ms
from agenttest import free_port, wait_for
from mirror_testing import make_mirror, remove
from tp_cluster.agent.config import AgentConfig, PortConfig
from tp_cluster.agent.runtime import Agent

pytestmark = pytest.mark.timeout(90)
REQUEST = b"GET /x HTTP/1.1\r\nhost: web\r\ncontent-length: 0\r\n\r\n"


async def test_a_mirror_adds_well_under_a_millisecond_to_the_callers_median(
        tiny_app: int, manager: Any, daemons: Any) -> None:
    port = free_port()
    agent = Agent(AgentConfig(
        name="web", namespace="demo", kind="Deployment", pod_name="web-1", pod_ip="",
        manager_address=f"127.0.0.1:{manager.port}", ports=(PortConfig("http", port, tiny_app),),
        listen_host="127.0.0.1"))
    await agent.start()
    plain: list[float] = []
    mirrored: list[float] = []
    try:
        await wait_for(agent.link.arrived.is_set)
        alice = await daemons("alice")
        # a personal intercept matching nothing: the agent parses with or without the mirror
        await make_mirror(alice, "none", tiny_app, matches={"x-dev": "never"}, mirror=False)
        for round_ in range(3):
            plain += await request_times_ms(port, 200, REQUEST)
            made = await make_mirror(alice, f"wt{round_}", tiny_app)
            mirrored += await request_times_ms(port, 200, REQUEST)
            # the copies were made and answered while the caller was measured
            await wait_for(lambda iid=made.id: agent.mirrors.stats(iid)[0] == 200,
                           what="every copy of the round answered")
            assert agent.mirrors.stats(made.id)[1] == 0
            await remove(alice, made.spec.name)
            await wait_for(lambda: all(not ic.mirror for ic in agent.registry.all()))
    finally:
        await agent.stop(grace=0.5)
    added = statistics.median(mirrored) - statistics.median(plain)
    print(f"caller median: same agent without a mirror {statistics.median(plain):.3f} ms, "
          f"with a mirror {statistics.median(mirrored):.3f} ms (added {added:+.3f} ms)")
    assert added < 1.0
