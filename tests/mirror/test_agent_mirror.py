"""Mirrors (`tp wiretap`) in the traffic-agent, against the real traffic-manager: the app
answers every caller, copies reach the mirror's client, rows carry both answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agenttest import Http, wait_for
from aiohttp import web
from mirror_testing import make_mirror
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(90)


class Rows:
    """A client's WatchTraffic stream, read in the background."""

    def __init__(self, manager: Any, daemon: Any, unmatched: bool = True) -> None:
        self.call = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
            session=daemon.session, include_unmatched=unmatched))
        self.rows: list[Any] = []
        self.task = asyncio.create_task(self._read(), name="rows")

    async def _read(self) -> None:
        async for row in self.call:
            self.rows.append(row)

    def mirrored(self) -> list[Any]:
        return [r for r in self.rows if r.mode == pb.TRAFFIC_MODE_MIRROR]

    def close(self) -> None:
        self.call.cancel()
        self.task.cancel()


async def watching(manager: Any, daemon: Any) -> Rows:
    rows = Rows(manager, daemon)
    session = manager.server.state.sessions[daemon.session.session_id]
    await wait_for(lambda: bool(session.traffic), what="the traffic watch")
    return rows


async def test_two_hundred_concurrent_callers_get_the_apps_answer_and_rows_have_both(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice = await daemons("alice")
    await make_mirror(alice, "web-wiretap", await local_server("alice"))
    await wait_for(lambda: bool(agent.registry.on_port(agent.listeners[0].ctx.port)))
    rows = await watching(manager, alice)
    port = agent.listeners[0].ctx.port

    async def caller(c: int) -> list[bytes]:
        http = await Http.connect(port)
        bodies = []
        for i in range(10):
            status, headers, body = await http.request("POST", f"/c{c}-{i}?q=1", body=b"b%d" % i)
            assert (status, headers["x-served-by"]) == (200, "app")
            bodies.append(body)
        await http.close()
        return bodies

    answers = [b for bs in await asyncio.gather(*(caller(c) for c in range(20))) for b in bs]
    assert len(answers) == 200
    assert all(b.startswith(b"app POST /c") for b in answers)
    await wait_for(lambda: len(rows.mirrored()) == 200, within=30,
                   what="a mirror row per request")
    rows.close()
    for row in rows.mirrored():
        assert row.intercept_name == "web-wiretap"
        assert row.routed_to == pb.ROUTED_TO_CLUSTER
        cluster = row.response_body_prefix.decode()
        local = row.local_answer.response_body_prefix.decode()
        assert cluster.startswith("app POST ") and local == "alice" + cluster[3:]
        assert (row.status, row.local_answer.status, row.local_answer.error) == (200, 200, "")
        assert row.local_answer.duration_ms > 0
        assert (row.workload, row.namespace, row.pod, row.service_port_name) == (
            "web", "demo", "web-7d9-abc", "http")
    # no plain row doubles a mirrored one
    assert not [r for r in rows.rows if r.mode != pb.TRAFFIC_MODE_MIRROR]
    state = manager.server.state
    await wait_for(lambda: next(iter(state.intercepts.values())).mirror_copied == 200,
                   what="the copied counter to reach the manager")
    assert next(iter(state.intercepts.values())).mirror_dropped == 0


async def test_a_mirror_and_a_personal_intercept_on_one_workload_each_route_right(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice, bob = await daemons("alice"), await daemons("bob")
    await make_mirror(alice, "web-wiretap", await local_server("alice"))
    await make_mirror(bob, "web-bob", await local_server("bob"), matches={"x-dev": "bob"},
                      mirror=False)
    port = agent.listeners[0].ctx.port
    await wait_for(lambda: len(agent.registry.on_port(port)) == 2)
    mirrored = await watching(manager, alice)
    http = await Http.connect(port)
    plan = ["bob", None, "bob", None, None]
    for i, who in enumerate(plan):
        _, headers, body = await http.request("GET", f"/p{i}", {"x-dev": who} if who else {})
        assert headers["x-served-by"] == (who or "app"), (i, body)
    await http.close()
    await wait_for(lambda: len(mirrored.mirrored()) == plan.count(None))
    mirrored.close()
    # the copies are of what the app answered; bob's requests are bob's alone
    assert sorted(r.path for r in mirrored.mirrored()) == ["/p1", "/p3", "/p4"]
    assert all(r.local_answer.response_body_prefix.startswith(b"alice GET /p")
               for r in mirrored.mirrored())


async def test_two_developers_mirror_one_workload_and_each_gets_their_copies(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice, bob = await daemons("alice"), await daemons("bob")
    await make_mirror(alice, "wt", await local_server("alice"))
    await make_mirror(bob, "wt", await local_server("bob"), methods=["POST"])
    port = agent.listeners[0].ctx.port
    await wait_for(lambda: len(agent.registry.on_port(port)) == 2)
    a_rows, b_rows = await watching(manager, alice), await watching(manager, bob)
    http = await Http.connect(port)
    for method in ("GET", "POST", "GET"):
        assert (await http.request(method, "/x"))[1]["x-served-by"] == "app"
    await http.close()
    await wait_for(lambda: len(a_rows.mirrored()) == 3 and len(b_rows.mirrored()) == 1)
    a_rows.close()
    b_rows.close()
    assert {r.local_answer.response_body_prefix.split()[0] for r in a_rows.mirrored()} == {
        b"alice"}
    assert [r.local_answer.response_body_prefix for r in b_rows.mirrored()] == [
        b"bob POST /x "]
    assert a_rows.mirrored()[0].client_session == alice.session.session_id


async def test_path_and_method_filters_choose_what_a_personal_intercept_takes(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await make_mirror(alice, "books", await local_server("alice"), mirror=False,
                      path_prefix="/books", path_regex=r"/\d+$", methods=["GET", "DELETE"])
    port = agent.listeners[0].ctx.port
    await wait_for(lambda: bool(agent.registry.on_port(port)))
    http = await Http.connect(port)
    cases = [("GET", "/books/12", "alice"), ("GET", "/books/12?x=1", "alice"),
             ("DELETE", "/books/7", "alice"), ("POST", "/books/12", "app"),
             ("GET", "/books/abc", "app"), ("GET", "/authors/12", "app"),
             ("GET", "/books", "app")]
    for method, path, expected in cases:
        headers = (await http.request(method, path))[1]
        assert headers["x-served-by"] == expected, (method, path)
    await http.close()


@pytest.fixture
async def stuck_local() -> AsyncIterator[int]:
    """A local side that takes 2 s per answer (a breakpoint in a handler, say)."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def test_a_full_mirror_queue_drops_copies_counts_them_and_never_slows_callers(
        agent: Any, daemons: Any, manager: Any, stuck_local: int, fast_settings: Any) -> None:
    fast_settings.intercept.mirror_queue = 2
    fast_settings.intercept.mirror_workers = 1
    alice = await daemons("alice")
    created = await make_mirror(alice, "wt", stuck_local)
    port = agent.listeners[0].ctx.port
    await wait_for(lambda: bool(agent.registry.on_port(port)))
    rows = await watching(manager, alice)
    http = await Http.connect(port)
    slowest = 0.0
    for i in range(10):
        start = time.perf_counter()
        assert (await http.request("GET", f"/d{i}"))[2] == f"app GET /d{i} ".encode()
        slowest = max(slowest, time.perf_counter() - start)
    await http.close()
    assert slowest < 1.0   # the local side takes 2 s a copy; the caller never waits for it
    state = manager.server.state
    # one copy in flight, two queued, seven dropped
    await wait_for(lambda: state.intercepts[created.id].mirror_dropped == 7,
                   what="seven drops counted at the manager")

    def dropped_rows() -> list[Any]:
        return [r for r in rows.mirrored() if r.local_answer.error.startswith("copy dropped")]

    # the agent batches its rows: they may reach the watcher after the manager's count
    await wait_for(lambda: len(dropped_rows()) == 7, what="seven dropped copies' rows")
    dropped = dropped_rows()
    assert all(r.status == 200 for r in dropped)
    assert "queue was full" in dropped[0].local_answer.error
    rows.close()


async def test_mirror_rows_redact_sensitive_headers_and_bound_bodies_with_a_flag(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice = await daemons("alice")
    await make_mirror(alice, "wt", await local_server("alice"))
    port = agent.listeners[0].ctx.port
    await wait_for(lambda: bool(agent.registry.on_port(port)))
    rows = await watching(manager, alice)
    http = await Http.connect(port)
    big = b"y" * 6000
    _, _, body = await http.request("POST", "/big", {"Authorization": "Bearer s3cret",
                                                     "Cookie": "a=b"}, body=big)
    await http.close()
    assert body == b"app POST /big " + big
    await wait_for(lambda: len(rows.mirrored()) == 1)
    rows.close()
    (row,) = rows.mirrored()
    headers = {h.name.lower(): h.value for h in row.request_headers}
    assert headers["authorization"] == headers["cookie"] == "[redacted]"
    # the local side got the whole request (its answer echoes it), the row keeps a prefix
    assert row.local_answer.response_size == len(b"alice POST /big ") + 6000
    assert len(row.local_answer.response_body_prefix) == 4096
    assert row.local_answer.response_body_truncated and row.response_body_truncated
    assert row.request_body_truncated and row.request_size == 6000
