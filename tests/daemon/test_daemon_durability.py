"""The daemon's intercept side when the manager loses track (restart, expiry) or its
channel is closed under the streams: intercepts are re-created in a new session, stream
loops reopen after grpc.aio's CancelledError, and a leave the manager cannot place frees
the name. Real manager, agent and API server; no root."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import grpc
import pytest
from daemon_testing import Daemon, create_workload, intercept_request, serve_from, until
from manager_testing import Manager
from tp_cluster import injector
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc

pytestmark = pytest.mark.timeout(30)
S = mpb.InterceptState
ME = [mpb.HeaderMatch(name="x-id", regex="^me$")]


def http_get(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/hello", headers={"x-id": "me"})
        return conn.getresponse().read()
    finally:
        conn.close()


async def intercepted(daemon: Daemon, kube: Any, namespace: str, start_agent: Any,
                      local_server: int) -> Any:
    """`web` with its agent, intercepted for `x-id: me`; returns the agent handle."""
    create_workload(kube, namespace, "web")
    serve_from(kube, namespace, "web", {"web-new": ["app", injector.AGENT_CONTAINER]})
    agent = await start_agent(namespace)
    await daemon.intercepts.intercept(mine(local_server))
    await routes_locally(agent.port)
    return agent


def mine(port: int) -> Any:
    """A personal intercept `mine` of `web` to the local server, without volumes."""
    request = intercept_request("web", port, name="mine", header_matches=ME)
    request.no_mount = True
    return request


async def routes_locally(port: int) -> None:
    """Until the agent sends `x-id: me` to the local server (the daemon's ReceiveDials
    stream reopens `daemon_stream_retry` after its channel or session changed)."""
    async def local() -> bool:
        return await asyncio.to_thread(http_get, port) == b"local GET /hello "

    await until(local, "the request to reach the local server")


def task_named(name: str) -> asyncio.Task[Any]:
    return next(t for t in asyncio.all_tasks() if t.get_name() == name)


async def test_a_leave_the_manager_cannot_place_frees_the_name(
        daemon: Daemon, manager: Manager, kube: Any, *, namespace: str, start_agent: Any,
        local_server: int) -> None:
    await intercepted(daemon, kube, namespace, start_agent, local_server)
    # the daemon has not heard yet (its watch is held) that the manager forgot it
    watch = task_named("tp-watch-intercepts")
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    manager.server.state.remove_intercept(daemon.owner.session.session_id, "mine")
    assert "mine" in daemon.intercepts.mine

    note = await daemon.intercepts.leave("mine")
    assert note == ("the traffic-manager no longer knew intercept mine; removed it on this "
                    "workstation")
    assert "mine" not in daemon.intercepts.mine and "mine" not in daemon.intercepts.book.local
    again = await daemon.intercepts.intercept(mine(local_server))
    assert again.intercept.state == S.INTERCEPT_STATE_ACTIVE


async def test_intercepts_are_recreated_in_a_new_session(
        daemon: Daemon, manager: Manager, kube: Any, *, namespace: str, start_agent: Any,
        local_server: int) -> None:
    agent = await intercepted(daemon, kube, namespace, start_agent, local_server)
    old = daemon.owner.session
    # what a manager restart looks like to the daemon: a new session, no intercepts
    daemon.intercepts.begin_restore()
    daemon.owner.session = await manager.stub.ArriveAsClient(mpb.ClientInfo(
        name="dev@laptop", namespace=namespace, version=VERSION), timeout=5)
    manager.server.state.depart(old.session_id, "the manager restarted")
    await until(lambda: not manager.server.state.intercepts, "the manager to forget it")
    assert "mine" in daemon.intercepts.mine or "mine" in daemon.intercepts.book.local

    restored, failed = await daemon.intercepts.restore()
    assert (restored, failed) == (["mine"], [])
    [info] = daemon.intercepts.intercepts()
    assert info.client_session == daemon.owner.session.session_id
    assert info.state == S.INTERCEPT_STATE_ACTIVE
    await routes_locally(agent.port)


async def test_stream_loops_reopen_when_their_channel_is_closed(
        daemon: Daemon, manager: Manager, kube: Any, *, namespace: str, start_agent: Any,
        local_server: int) -> None:
    # the streams run on a channel of their own, which a reconnect then closes
    await daemon.intercepts.stop()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{manager.port}")
    original = daemon.owner.stub
    daemon.owner.stub = mgrpc.ManagerStub(channel)
    daemon.intercepts.start()
    await asyncio.wait_for(channel.channel_ready(), 5)
    daemon.owner.stub = original
    await channel.close()  # grpc.aio raises CancelledError inside the stream loops
    agent = await intercepted(daemon, kube, namespace, start_agent, local_server)
    # the dial came through a ReceiveDials stream reopened on the other channel
    assert agent is not None and all(not t.done() for t in daemon.intercepts._tasks)
