"""Intercept bookkeeping: states as agents come and review, conflicts, traffic fan-out."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(30)
S = pb.InterceptState


async def arrive(manager: Any, name: str = "dev@laptop") -> Any:
    return await manager.stub.ArriveAsClient(
        pb.ClientInfo(name=name, namespace="demo", version=VERSION), timeout=5)


async def agent(manager: Any, workload: str = "web") -> Any:
    return await manager.stub.ArriveAsAgent(pb.AgentInfo(
        name=workload, namespace="demo", pod_name=f"{workload}-1", pod_ip="10.244.0.7"),
        timeout=5)


async def create(manager: Any, session: Any, **spec: Any) -> Any:
    spec.setdefault("workload", "web")
    spec.setdefault("namespace", "demo")
    spec.setdefault("target_port", 3000)
    return await manager.stub.CreateIntercept(
        pb.CreateInterceptRequest(session=session, spec=pb.InterceptSpec(**spec)), timeout=5)


async def test_an_intercept_waits_for_an_agent_and_turns_active_when_reviewed(
        manager: Any) -> None:
    client = await arrive(manager)
    created = await create(manager, client)
    assert (created.spec.name, created.state) == ("web-demo", S.INTERCEPT_STATE_NO_AGENT)
    assert created.spec.mechanism == pb.MECHANISM_TCP

    watch = manager.stub.WatchIntercepts(client, timeout=10)
    assert (await watch.read()).intercepts[0].state == S.INTERCEPT_STATE_NO_AGENT
    web = await agent(manager)
    assert (await watch.read()).intercepts[0].state == S.INTERCEPT_STATE_WAITING

    for_agent = manager.stub.WatchInterceptsForAgent(web, timeout=10)
    seen = (await for_agent.read()).intercepts
    assert [ic.id for ic in seen] == [created.id]
    await manager.stub.ReviewIntercept(pb.ReviewInterceptRequest(
        session=web, intercept_id=created.id, state=S.INTERCEPT_STATE_ACTIVE,
        environment={"PORT": "3000"}), timeout=5)
    active = (await watch.read()).intercepts[0]
    assert active.state == S.INTERCEPT_STATE_ACTIVE
    assert (active.agent_pod, dict(active.environment)) == ("web-1.demo", {"PORT": "3000"})

    await manager.stub.Depart(web, timeout=5)
    assert (await watch.read()).intercepts[0].state == S.INTERCEPT_STATE_NO_AGENT
    watch.cancel()
    for_agent.cancel()


async def test_a_second_global_intercept_of_a_workload_is_refused(manager: Any) -> None:
    await create(manager, await arrive(manager, "alice"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(manager, await arrive(manager, "bob"), name="mine")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already intercepted by 'web-demo' of alice" in (err.value.details() or "")


async def test_personal_intercepts_of_two_clients_coexist(manager: Any) -> None:
    for who in ("alice", "bob"):
        created = await create(manager, await arrive(manager, who), header_matches=[
            pb.HeaderMatch(name="x-dev", regex=who)])
        assert created.spec.mechanism == pb.MECHANISM_HTTP
    assert len(manager.server.state.intercepts) == 2


async def test_an_invalid_regex_is_refused_with_the_reason(manager: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(manager, await arrive(manager),
                     header_matches=[pb.HeaderMatch(name="id", regex="(unclosed")])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "--http-match id=(unclosed: invalid regex" in (err.value.details() or "")
    assert manager.server.state.intercepts == {}


async def test_the_same_name_twice_is_refused_and_removing_an_unknown_one_says_so(
        manager: Any) -> None:
    client = await arrive(manager)
    await create(manager, client)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(manager, client)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await manager.stub.RemoveIntercept(pb.RemoveInterceptRequest(session=client,
                                                                 name="web-demo"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.RemoveIntercept(pb.RemoveInterceptRequest(session=client,
                                                                     name="web-demo"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_traffic_rows_reach_the_owning_client_only(manager: Any) -> None:
    alice, bob = await arrive(manager, "alice"), await arrive(manager, "bob")
    mine = await create(manager, alice, header_matches=[pb.HeaderMatch(name="id", regex="a")])
    web = await agent(manager)
    alice_rows = manager.stub.WatchTraffic(pb.WatchTrafficRequest(session=alice), timeout=10)
    bob_rows = manager.stub.WatchTraffic(pb.WatchTrafficRequest(session=bob), timeout=3)

    async def reports() -> Any:
        for i in range(3):
            yield pb.TrafficReport(session=web, record=pb.TrafficRecord(
                id=f"r{i}", intercept_id=mine.id, intercept_name="web-demo",
                client_session=alice.session_id, workload="web", namespace="demo",
                method="GET", path=f"/color?{i}", status=200,
                routed_to=pb.ROUTED_TO_LOCAL))

    # wait until both watches are registered, then report
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    state = manager.server.state
    while not all(state.sessions[s.session_id].traffic for s in (alice, bob)):
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    await manager.stub.ReportTraffic(reports(), timeout=5)
    paths = [(await alice_rows.read()).path for _ in range(3)]
    assert paths == ["/color?0", "/color?1", "/color?2"]
    try:  # bob sees nothing: his stream ends (deadline, or his silent session expires)
        row = await bob_rows.read()
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert row == grpc.aio.EOF
    alice_rows.cancel()


async def test_an_expired_client_loses_its_intercepts_and_the_agent_sees_them_go(
        manager: Any) -> None:
    client = await arrive(manager)
    created = await create(manager, client)
    web = await agent(manager)
    for_agent = manager.stub.WatchInterceptsForAgent(web, timeout=15)
    assert [ic.id for ic in (await for_agent.read()).intercepts] == [created.id]

    async def agent_remains() -> None:  # only the client falls silent
        while True:
            await manager.stub.Remain(pb.RemainRequest(session=web), timeout=5)
            await asyncio.sleep(0.2)

    keepalive = asyncio.create_task(agent_remains(), name="agent-remain")
    try:
        snapshot = await asyncio.wait_for(for_agent.read(), 10)
        assert list(snapshot.intercepts) == []
        assert client.session_id not in manager.server.state.sessions
        assert manager.server.state.intercepts == {}
    finally:
        keepalive.cancel()
        for_agent.cancel()


async def test_prepare_and_uninstall_say_so_when_the_manager_has_no_kubernetes_access(
        manager: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.PrepareIntercept(pb.InterceptSpec(workload="web", namespace="demo"),
                                            timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_workload_states_are_an_enum_with_a_reason_only_when_not_interceptable() -> None:
    from tp_cluster import injector
    from tp_cluster.manager.workloads import workload_state

    dep = {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "ports": [{"name": "http",
                                                           "containerPort": 8080}]}]}}}}
    svc = {"kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    assert workload_state("Deployment", dep, [svc]) == (pb.WORKLOAD_STATE_INTERCEPTABLE, "")
    injected, _ = injector.inject(dep, svc, "http", "agent:1", "tm:8081")
    assert workload_state("Deployment", injected, [svc]) == (
        pb.WORKLOAD_STATE_AGENT_INSTALLED, "")
    state, reason = workload_state("Deployment", dep, [])
    assert state == pb.WORKLOAD_STATE_NOT_INTERCEPTABLE
    assert reason.startswith("no Service selects the pods of web")


async def test_unmatched_rows_reach_the_workloads_interceptor_only_when_asked_and_by_name(
        manager: Any) -> None:
    alice = await arrive(manager, "alice")
    mine = await create(manager, alice, header_matches=[pb.HeaderMatch(name="id", regex="a")])
    web = await agent(manager)
    everything = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=alice, include_unmatched=True), timeout=10)
    only_other = manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=alice, intercept_names=["other"]), timeout=10)
    state = manager.server.state
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(state.sessions[alice.session_id].traffic) < 2:
        assert loop.time() < deadline
        await asyncio.sleep(0.02)

    async def reports() -> Any:
        yield pb.TrafficReport(session=web, record=pb.TrafficRecord(
            id="mine", intercept_id=mine.id, intercept_name="web-demo",
            client_session=alice.session_id, workload="web", namespace="demo",
            routed_to=pb.ROUTED_TO_LOCAL))
        yield pb.TrafficReport(session=web, record=pb.TrafficRecord(
            id="app", workload="web", namespace="demo", routed_to=pb.ROUTED_TO_CLUSTER))
        yield pb.TrafficReport(session=web, record=pb.TrafficRecord(
            id="elsewhere", workload="db", namespace="demo", routed_to=pb.ROUTED_TO_CLUSTER))

    await manager.stub.ReportTraffic(reports(), timeout=5)
    assert [(await everything.read()).id for _ in range(2)] == ["mine", "app"]
    named = [w for w in state.sessions[alice.session_id].traffic if w.intercept_names]
    assert len(named) == 1 and not named[0].queue  # "other" matched none of the rows
    everything.cancel()
    only_other.cancel()


async def test_unmatched_rows_reach_every_developer_with_a_personal_intercept_on_the_workload(
        manager: Any) -> None:
    alice, bob = await arrive(manager, "alice"), await arrive(manager, "bob")
    await create(manager, alice, name="alice",
                 header_matches=[pb.HeaderMatch(name="id", regex="alice")])
    await create(manager, bob, name="bob",
                 header_matches=[pb.HeaderMatch(name="id", regex="bob")])
    web = await agent(manager)
    watches = [manager.stub.WatchTraffic(pb.WatchTrafficRequest(
        session=who, include_unmatched=True), timeout=10) for who in (alice, bob)]
    state = manager.server.state
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not all(state.sessions[s.session_id].traffic for s in (alice, bob)):
        assert loop.time() < deadline
        await asyncio.sleep(0.02)

    async def reports() -> Any:
        yield pb.TrafficReport(session=web, record=pb.TrafficRecord(
            id="green", workload="web", namespace="demo", routed_to=pb.ROUTED_TO_CLUSTER))

    await manager.stub.ReportTraffic(reports(), timeout=5)
    for watch in watches:
        assert (await watch.read()).id == "green"
        watch.cancel()


async def test_the_volume_token_reaches_only_the_intercepts_owner(manager: Any) -> None:
    owner, other = await arrive(manager), await arrive(manager, "other@laptop")
    created = await create(manager, owner, header_matches=[pb.HeaderMatch(name="x", regex="1")])
    web = await agent(manager)
    await manager.stub.ReviewIntercept(pb.ReviewInterceptRequest(
        session=web, intercept_id=created.id, state=S.INTERCEPT_STATE_ACTIVE,
        volumes_port=4242, volumes_token="secret"), timeout=5)
    mine = (await manager.stub.ListIntercepts(pb.ListInterceptsRequest(
        session=owner, namespace="demo"), timeout=5)).intercepts[0]
    theirs = (await manager.stub.ListIntercepts(pb.ListInterceptsRequest(
        session=other, namespace="demo"), timeout=5)).intercepts[0]
    assert (mine.volumes_port, mine.volumes_token) == (4242, "secret")
    assert (theirs.volumes_port, theirs.volumes_token) == (4242, "")
    assert manager.server.state.intercepts[created.id].volumes_token == "secret"


async def test_listing_workloads_needs_kubernetes_access_and_says_so(manager: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.ListWorkloads(pb.ListWorkloadsRequest(
            session=await arrive(manager)), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "without Kubernetes access" in (err.value.details() or "")
