"""Fixtures shared by tests/agent and tests/mirror (imported by their conftest.py): the
REAL traffic-manager on loopback, an app server, local servers, FakeDaemons
(agenttest.py), and `running_agent` for each folder's in-process traffic-agent.

The `manager` fixture asks for `fast_settings`, which each conftest defines with the
settings its tests need."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest
from agenttest import FakeDaemon, free_port, wait_for
from aiohttp import web
from http_testing import http_server
from manager_testing import Manager, running_manager
from tp_cluster.agent.config import AgentConfig, PortConfig, ServicePort
from tp_cluster.agent.runtime import Agent
from tp_cluster.manager.dns import ClusterResolver

FAST = {"local_dial_timeout": 1.5, "agent_reconnect_backoff_max": 0.5,
        "agent_retire_idle": 0.2}
"""Short timeouts and backoffs both folders' fast_settings start from."""


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
async def daemons(manager: Manager) -> AsyncIterator[Callable[..., Awaitable[FakeDaemon]]]:
    made: list[FakeDaemon] = []

    async def make(name: str = "alice", remain: bool = True) -> FakeDaemon:
        daemon = await FakeDaemon(manager, name).arrive(remain)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        await daemon.close()


@asynccontextmanager
async def running_agent(manager: Manager, app_port: int, **config: Any
                        ) -> AsyncIterator[tuple[Agent, int]]:
    """The agent of pod web-7d9-abc (Deployment web.demo), arrived at `manager`, serving
    Service port 80 on a free loopback port in front of `app_port`; (agent, that port).
    `config`: other AgentConfig fields (mounts, app_env)."""
    port = free_port()
    fields: dict[str, Any] = {"mounts": (), "app_env": {}, **config}
    handle = Agent(AgentConfig(
        name="web", namespace="demo", kind="Deployment", pod_name="web-7d9-abc",
        pod_ip="10.244.0.7", manager_address=f"127.0.0.1:{manager.port}",
        ports=(PortConfig("http", port, app_port, (ServicePort("http", 80),)),),
        app_container="app", listen_host="127.0.0.1", **fields))
    await handle.start()
    await wait_for(handle.link.arrived.is_set, what="the agent to arrive")
    try:
        yield handle, port
    finally:
        await handle.stop(grace=0.5)


# --- the overhead tests' app and caller ----------------------------------------------

TINY_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class _Tiny(asyncio.Protocol):
    """The cheapest keep-alive HTTP server: one fixed answer per request head."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(TINY_RESPONSE)


@pytest.fixture
async def tiny_app() -> AsyncIterator[int]:
    """The port of an HTTP server answering TINY_RESPONSE to every request head."""
    server = await asyncio.get_running_loop().create_server(_Tiny, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def request_times_ms(port: int, n: int, request: bytes) -> list[float]:
    """Milliseconds of each of `n` requests on one keep-alive connection to a tiny_app
    (directly or through an agent), without the first tenth (warm-up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        writer.write(request)
        got = b""
        while not got.endswith(b"ok"):
            got += await reader.read(65536)
        times.append((time.perf_counter() - start) * 1000.0)
    writer.close()
    return times[n // 10:]


@asynccontextmanager
async def alice_routed(manager: Manager, daemons: Any, local_server: Any,
                       serve: Any, local_port: int = 0) -> AsyncIterator[tuple[int, Any]]:
    """An app served by `serve(reader, writer)` behind a real agent, with developer alice's
    personal intercept `x-dev: alice` on its port, answered on `local_port` (default: her
    usual local server); (agent port, alice)."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        async with running_agent(manager, server.sockets[0].getsockname()[1]) as (agent, port):
            alice = await daemons("alice")
            await alice.intercept("web-alice", local_port or await local_server("alice"),
                                  matches={"x-dev": "alice"})
            await wait_for(lambda: bool(agent.registry.on_port(port)))
            yield port, alice
    finally:
        server.close()


async def read_responses(reader: asyncio.StreamReader, count: int = 1,
                         methods: list[bytes] | None = None
                         ) -> list[tuple[Any, bytes, bytes]]:
    """`count` responses parsed by h11 (final status event, body, the raw bytes read so
    far); `methods` say which answers belong to HEADs. 1xx answers are skipped."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[Any, bytes, bytes]] = []
    raw = b""
    methods = methods or [b"GET"] * count
    for n, method in enumerate(methods):
        if n:
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"web")]))
        conn.send(h11.EndOfMessage())
        head: Any = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), 5)
                raw += data
                conn.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event}")
        out.append((head, body, raw))
    return out
