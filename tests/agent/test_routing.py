"""The traffic-agent against the real traffic-manager: where each connection and request goes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from agenttest import Http, wait_for
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(60)


async def test_without_intercepts_traffic_goes_straight_to_the_app(agent: Any) -> None:
    http = await Http.connect(agent.port)
    status, headers, body = await http.request("POST", "/x?q=1", body=b"hi")
    assert (status, body) == (200, b"app POST /x?q=1 hi")
    assert headers["x-served-by"] == "app"
    await http.close()


async def test_a_global_intercept_sends_every_connection_to_its_client(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-all", await local_server("alice"))
    await wait_for(lambda: agent.agent.registry.global_on(agent.port) is not None,
                   what="the agent to take the intercept")
    http = await Http.connect(agent.port)
    for i in range(3):  # keep-alive through one tunnel
        assert (await http.request("GET", f"/g{i}"))[2] == f"alice GET /g{i} ".encode()
    await http.close()
    assert alice.accepted == 1


async def test_personal_intercepts_route_each_request_of_one_keep_alive_connection(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    plan = [None, "alice", None, None, "alice", "bob", "alice", None]
    for i, who in enumerate(plan):
        headers = {"x-dev": who} if who else {}
        status, _, body = await http.request("POST", f"/r{i}", headers, body=b"b%d" % i)
        expected = "alice" if who == "alice" else "app"
        assert (status, body) == (200, f"{expected} POST /r{i} b{i}".encode()), i
    await http.close()
    assert alice.accepted == plan.count("alice")


async def test_all_header_matches_must_hold_and_values_are_regexes(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"),
                          matches={"x-dev": "^ali", "X-Env": "staging|qa"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    cases = [({"x-dev": "alice"}, "app"), ({"x-env": "qa"}, "app"),
             ({"X-DEV": "alicia", "x-env": "qa"}, "alice"),
             ({"x-dev": "malice", "x-env": "staging"}, "app"),
             ({"x-dev": "alice", "x-env": "prod-staging"}, "alice")]
    for headers, expected in cases:
        body = (await http.request("GET", "/m", headers))[2]
        assert body.startswith(expected.encode()), (headers, body)
    await http.close()


async def test_two_hundred_concurrent_mixed_requests_are_never_misrouted(
        agent: Any, daemons: Any, local_server: Any) -> None:
    for who in ("alice", "bob"):
        daemon = await daemons(who)
        await daemon.intercept(f"web-{who}", await local_server(who), matches={"x-dev": who})
    await wait_for(lambda: len(agent.agent.registry.on_port(agent.port)) == 2)
    rng = random.Random(7)

    async def connection(c: int) -> list[tuple[str, bytes]]:
        http = await Http.connect(agent.port)
        seen = []
        for i in range(10):
            who = rng.choice(["alice", "bob", "carol", None])
            headers = {"x-dev": who} if who else {}
            path = "/slow" if i % 5 == 0 else f"/c{c}-{i}"
            _, _, body = await http.request("GET", path, headers)
            seen.append((who or "", body))
        await http.close()
        return seen

    results = await asyncio.gather(*(connection(c) for c in range(20)))
    flat = [item for seen in results for item in seen]
    assert len(flat) == 200
    for who, body in flat:
        expected = who if who in ("alice", "bob") else "app"
        assert body.split(b" ")[0] == expected.encode(), (who, body)


async def test_a_local_side_that_is_down_answers_502_with_the_refusal_as_reason(
        agent: Any, daemons: Any, free_local_port: int) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", free_local_port, matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    status, headers, body = await http.request("GET", "/down", {"x-dev": "alice"})
    assert status == 502 and headers["x-tp-error"] == "1"
    # "refused", not a dial timeout: the answer did not wait for local_dial_timeout
    assert b"refused" in body and body.count(b"\n") == 1
    # the connection survives: the next request is the app's
    assert (await http.request("GET", "/after"))[2] == b"app GET /after "
    await http.close()


async def test_a_global_intercept_without_a_receiving_client_answers_502(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-all", await local_server("alice"))
    await wait_for(lambda: agent.agent.registry.global_on(agent.port) is not None)
    await alice.close()  # stops receiving dials but the session lives on for a TTL
    await wait_for(lambda: not any(s.dial_receivers for s in
                                   agent.manager_state().sessions.values()), what="no receivers")
    http = await Http.connect(agent.port)
    status, _, body = await http.request("GET", "/nobody")
    assert status == 502 and b"not receiving dials" in body
    await http.close()


async def test_an_expired_session_loses_its_intercepts_and_traffic_returns_to_the_app(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    http = await Http.connect(agent.port)
    assert (await http.request("GET", "/1", {"x-dev": "alice"}))[2].startswith(b"alice")
    alice.stop_remaining()
    await wait_for(lambda: not agent.agent.registry.on_port(agent.port), within=5,
                   what="the expired intercept to leave the agent")
    assert (await http.request("GET", "/2", {"x-dev": "alice"}))[2].startswith(b"app")
    await http.close()


async def test_the_agent_reviews_with_the_app_environment_and_mounts(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    info = await alice.intercept("web-alice", await local_server("alice"),
                                 matches={"x-dev": "alice"})
    assert dict(info.environment) == {"COLOR": "blue"}
    assert [(m.name, m.mount_path, m.read_only) for m in info.mounts] == [
        ("data", "/var/data", True)]
    assert (info.agent_pod, info.pod_ip) == ("web-7d9-abc.demo", "10.244.0.7")


async def test_an_intercept_of_a_port_the_agent_does_not_serve_is_refused(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    info = await alice.intercept("web-grpc", await local_server("alice"), service_port="grpc",
                                 wait_state=pb.INTERCEPT_STATE_AGENT_ERROR)
    assert "does not serve port 'grpc' (it serves http)" in info.message
    assert not agent.agent.registry.on_port(agent.port)


async def test_capture_records_every_exchange_with_where_it_was_routed(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    watch = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=alice.session, include_unmatched=True))
    await wait_for(lambda: any(s.traffic for s in manager.server.state.sessions.values()))
    http = await Http.connect(agent.port)
    await http.request("POST", "/mine?a=1", {"x-dev": "alice"}, body=b"x" * 5000)
    await http.request("GET", "/status/404")
    await http.close()
    rows = [await asyncio.wait_for(watch.read(), 5) for _ in range(2)]
    watch.cancel()
    mine, other = sorted(rows, key=lambda r: r.routed_to)
    assert (mine.routed_to, mine.intercept_name, mine.method, mine.path, mine.status) == (
        pb.ROUTED_TO_LOCAL, "web-alice", "POST", "/mine?a=1", 200)
    assert (mine.request_size, len(mine.request_body_prefix), mine.request_body_truncated) == (
        5000, 4096, True)
    assert mine.response_body_prefix.startswith(b"alice POST /mine?a=1 xxx")
    assert ("x-dev", "alice") in [(h.name, h.value) for h in mine.request_headers]
    assert mine.client_session == alice.session.session_id
    assert mine.duration_ms >= mine.time_to_first_byte_ms > 0
    assert (other.routed_to, other.status, other.intercept_id) == (pb.ROUTED_TO_CLUSTER, 404, "")
    assert (other.workload, other.namespace, other.pod, other.port) == (
        "web", "demo", "web-7d9-abc", agent.port)


async def test_a_global_intercept_is_captured_when_it_speaks_http(
        agent: Any, daemons: Any, local_server: Any, manager: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-all", await local_server("alice"))
    await wait_for(lambda: agent.agent.registry.global_on(agent.port) is not None)
    watch = manager.stub.WatchTraffic(pb.WatchTrafficRequest(session=alice.session))
    await wait_for(lambda: any(s.traffic for s in manager.server.state.sessions.values()))
    http = await Http.connect(agent.port)
    for i in range(2):
        await http.request("PUT", f"/g{i}", body=b"data")
    await http.close()
    rows = [await asyncio.wait_for(watch.read(), 5) for _ in range(2)]
    watch.cancel()
    assert [(r.method, r.path, r.status, r.routed_to, r.response_body_prefix) for r in rows] == [
        ("PUT", f"/g{i}", 200, pb.ROUTED_TO_LOCAL, f"alice PUT /g{i} data".encode())
        for i in range(2)]


async def test_an_idle_unparsed_keep_alive_connection_is_retired_when_intercepts_arrive(
        agent: Any, daemons: Any, local_server: Any) -> None:
    pooled = await Http.connect(agent.port)  # a caller's pooled connection, on the fast path
    assert (await pooled.request("GET", "/before", {"x-dev": "alice"}))[2].startswith(b"app")
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    # closed once quiet after its last response, so the caller reconnects ...
    assert await asyncio.wait_for(pooled.reader.read(), 5) == b""
    await pooled.close()
    # ... and its next connection is routed per request
    fresh = await Http.connect(agent.port)
    assert (await fresh.request("GET", "/after", {"x-dev": "alice"}))[2].startswith(b"alice")
    await fresh.close()


async def test_a_busy_unparsed_connection_is_not_cut_while_it_is_retiring(
        agent: Any, daemons: Any, local_server: Any) -> None:
    pooled = await Http.connect(agent.port)
    assert (await pooled.request("GET", "/1"))[0] == 200
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    for i in range(3):  # requests keep coming faster than the idle period: served by the app
        assert (await pooled.request("GET", f"/busy{i}", {"x-dev": "alice"}))[2].startswith(
            b"app")
        await asyncio.sleep(0.05)
    await pooled.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
        agent: Any, daemons: Any, local_server: Any) -> None:
    alice = await daemons("alice")
    await alice.intercept("web-alice", await local_server("alice"), matches={"x-dev": "alice"})
    await wait_for(lambda: bool(agent.agent.registry.on_port(agent.port)))
    for who in ("alice", "carol"):
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        writer.write(f"PUT /up HTTP/1.1\r\nhost: web\r\nx-dev: {who}\r\ncontent-length: 4\r\n"
                     "expect: 100-continue\r\n\r\n".encode())
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
            b"HTTP/1.1 100 \r\n\r\n")
        writer.write(b"data")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        expected = b"alice PUT /up data" if who == "alice" else b"app PUT /up data"
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        writer.close()
