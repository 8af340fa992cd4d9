"""The agent's overhead on unmatched requests (target: under 1 ms at the median)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agenttest import free_port, wait_for
from tp_cluster.agent.config import AgentConfig, PortConfig
from tp_cluster.agent.runtime import Agent

pytestmark = pytest.mark.timeout(60)
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
REQUEST = b"GET /x HTTP/1.1\r\nhost: web\r\nx-dev: nobody\r\n\r\n"


class _Tiny(asyncio.Protocol):
    """The cheapest keep-alive HTTP server: one fixed answer per request head."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


@pytest.fixture
async def tiny_app() -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(_Tiny, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _median_ms(port: int, n: int = 300) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        writer.write(REQUEST)
        got = b""
        while not got.endswith(b"ok"):
            got += await reader.read(65536)
        times.append(time.perf_counter() - start)
    writer.close()
    return statistics.median(times[n // 10:]) * 1000.0  # the first requests warm up


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
