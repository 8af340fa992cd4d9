"""Agent injection against the sandbox API server: prepare, conflicts, uninstall.

A real traffic-manager (in-process, loopback) with the real kube adapter on the
sandbox's admin kubeconfig. The agent's arrival is played by the test (ArriveAsAgent),
since pods cannot reach a manager on the host's loopback; the pods of test Deployments
name a scheduler nobody runs (so they stay Pending and run nothing) unless a running pod
is what the test is about.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from kubernetes import client
from manager_testing import Manager, comparable, running_manager, token_of
from tp_cluster import injector
from tp_cluster.kube import Kube, KubeConflict
from tp_cluster.manager.dns import ClusterResolver
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]
S = pb.InterceptState


@pytest.fixture
async def kmanager(cluster_dns: Any, fast_settings: Any, kube: Any
                   ) -> AsyncIterator[Manager]:
    fast_settings.connect.session_ttl = 30.0  # fake agents do not keep their sessions alive
    fast_settings.intercept.activate_timeout = 20.0
    fast_settings.intercept.manager_rollout_poll = 0.2

    resolver = ClusterResolver("127.0.0.1", "cluster.local", 2.0, port=cluster_dns.port)
    async with running_manager(resolver, grace=1.0, kube=Kube(kube),
                               token=token_of(kube)) as manager:
        yield manager


UNSCHEDULED = "tp-tests-no-such-scheduler"
"""A scheduler nobody runs: pods naming it stay Pending (the manager refuses 0 replicas)."""


def deployment(name: str, ports: list[dict[str, Any]], replicas: int = 1,
               scheduled: bool = False) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {} if scheduled else {"schedulerName": UNSCHEDULED}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"team": "blue"},
                     "annotations": {"owner": "blue-team"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {**pod_spec, "containers": [{
                    "name": "app", "image": "python",
                    "command": ["python3", "-m", "http.server", "8080"],
                    "ports": ports,
                    "env": [{"name": "GREETING", "value": "hello"}],
                }]},
            },
        },
    }


def service(name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": ports}}


def create(apps: Any, core: Any, namespace: str, dep: dict[str, Any],
           svc: dict[str, Any] | None) -> None:
    apps.create_namespaced_deployment(namespace, dep)
    if svc is not None:
        core.create_namespaced_service(namespace, svc)


def raw(kube: Any, kind: str, namespace: str, name: str) -> dict[str, Any]:
    adapter = Kube(kube)
    obj = (adapter.get_deployment(namespace, name) if kind == "Deployment"
           else adapter.get_service(namespace, name))
    assert obj is not None
    return obj


async def until(condition: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (value := await asyncio.to_thread(condition)):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def arrive(m: Manager, name: str = "dev@laptop", namespace: str = "default") -> Any:
    return await m.stub.ArriveAsClient(pb.ClientInfo(name=name, namespace=namespace,
                                                     version=VERSION), timeout=5)


async def agent_arrives(m: Manager, workload: str, namespace: str) -> Any:
    return await m.stub.ArriveAsAgent(pb.AgentInfo(
        name=workload, namespace=namespace, kind="Deployment", pod_name=f"{workload}-x",
        pod_ip="10.244.0.9", version=VERSION), timeout=5)


async def prepare_with_agent(m: Manager, kube: Any, namespace: str, workload: str,
                             **spec: Any) -> tuple[Any, Any]:
    """PrepareIntercept that injects; the 'agent' arrives once the Deployment has it."""
    call = asyncio.ensure_future(m.stub.PrepareIntercept(pb.InterceptSpec(
        workload=workload, namespace=namespace, **spec), timeout=30))
    await until(lambda: injector.agent_installed(raw(kube, "Deployment", namespace, workload)),
                "the agent to be injected")
    assert not call.done(), "prepare returned before the agent arrived"
    agent = await agent_arrives(m, workload, namespace)
    return await call, agent


async def test_prepare_injects_on_a_symbolic_port_and_returns_when_the_agent_arrives(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}]),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    svc_before = raw(kube, "Service", namespace, "web")

    prepared, _ = await prepare_with_agent(kmanager, kube, namespace, "web")
    assert (prepared.error, prepared.workload_kind, prepared.service_name) == (
        "", "Deployment", "web")
    assert (prepared.service_port_name, prepared.service_port, prepared.container_port) == (
        "http", 80, 8080)
    assert not prepared.agent_installed
    assert prepared.agent_image == f"ghcr.io/tp-jupyter/traffic-agent:{VERSION}"

    containers = raw(kube, "Deployment", namespace, "web")["spec"]["template"]["spec"][
        "containers"]
    assert [c["name"] for c in containers] == ["app", "traffic-agent"]
    assert [p["name"] for p in containers[0]["ports"]] == ["tm-http"]
    assert [p["name"] for p in containers[1]["ports"]] == ["http"]
    # symbolic: the Service, unchanged, now targets the agent
    assert comparable(raw(kube, "Service", namespace, "web")) == comparable(svc_before)

    again = await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
        workload="web", namespace=namespace, service_port="80"), timeout=10)
    assert again.agent_installed and again.container_port == 8080


async def test_prepare_on_a_numeric_target_port_rewrites_the_service_to_the_agent(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("api", [{"containerPort": 8080}]),
           service("api", [{"name": "web", "port": 80, "targetPort": 8080},
                           {"name": "metrics", "port": 9090, "targetPort": 9090}]))

    prepared, _ = await prepare_with_agent(kmanager, kube, namespace, "api",
                                           service_port="web")
    assert (prepared.service_port, prepared.container_port) == (80, 8080)
    ports = raw(kube, "Service", namespace, "api")["spec"]["ports"]
    assert [p["targetPort"] for p in ports] == ["tp-8080", "tp-9090"]
    agent = raw(kube, "Deployment", namespace, "api")["spec"]["template"]["spec"][
        "containers"][1]
    assert {p["name"] for p in agent["ports"]} == {"tp-8080", "tp-9090"}


async def test_an_unknown_workload_or_port_is_refused_with_what_to_do(
        kmanager: Manager, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}]),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
            workload="nope", namespace=namespace), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == (f"deployment nope not found in namespace {namespace}: "
                                   f"check the name with `tp list -n {namespace}`")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
            workload="web", namespace=namespace, service_port="8443"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "service web has no port 8443; its ports are http/80" in (err.value.details() or "")


async def test_a_workload_no_service_selects_is_not_interceptable_and_stays_untouched(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace, deployment("lonely", [{"containerPort": 8080}]), None)
    before = comparable(raw(kube, "Deployment", namespace, "lonely"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
            workload="lonely", namespace=namespace), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no Service selects its pods; create a Service for it" in (err.value.details() or "")
    assert comparable(raw(kube, "Deployment", namespace, "lonely")) == before


async def test_an_agent_that_never_arrives_times_out_and_the_workload_is_restored(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    kmanager.server.settings.intercept.activate_timeout = 1.0
    create(apps, core, namespace,
           deployment("web", [{"containerPort": 8080}]),
           service("web", [{"port": 80, "targetPort": 8080}]))
    dep_before = comparable(raw(kube, "Deployment", namespace, "web"))
    svc_before = comparable(raw(kube, "Service", namespace, "web"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
            workload="web", namespace=namespace), timeout=20)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not arrive within 1s" in (err.value.details() or "")
    assert comparable(raw(kube, "Deployment", namespace, "web")) == dep_before
    assert comparable(raw(kube, "Service", namespace, "web")) == svc_before


async def test_an_agent_image_that_cannot_be_pulled_fails_fast_and_restores_the_workload(
        kmanager: Manager, sandbox: Any, kube: Any, apps: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node (pods)")
    assert kmanager.server.workloads is not None
    kmanager.server.workloads.agent_image = "ghcr.io/tp-jupyter/no-such-agent:0"
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}], scheduled=True),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    before = comparable(raw(kube, "Deployment", namespace, "web"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.PrepareIntercept(pb.InterceptSpec(
            workload="web", namespace=namespace), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert f"the traffic-agent of web.{namespace} cannot start" in details
    assert "ErrImagePull" in details or "ImagePullBackOff" in details
    assert comparable(raw(kube, "Deployment", namespace, "web")) == before


async def test_conflicts_compare_the_resolved_port_however_it_was_named(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}]),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    alice, bob, carol = [await arrive(kmanager, who) for who in ("alice", "bob", "carol")]

    def spec(**kw: Any) -> Any:
        return pb.InterceptSpec(workload="web", namespace=namespace, target_port=3000, **kw)

    me = [pb.HeaderMatch(name="x-dev", regex="alice")]
    mine = await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
        session=alice, spec=spec(name="alice-web", header_matches=me)), timeout=10)
    assert (mine.spec.service_name, mine.spec.service_port) == ("web", "http")
    await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
        session=bob, spec=spec(name="bob-web", service_port="80",
                               header_matches=[pb.HeaderMatch(name="x-dev", regex="bob")])),
        timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # global vs existing personal ones
        await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
            session=carol, spec=spec(name="all-web", service_port="80")), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already intercepted by 'alice-web' of alice" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
            session=alice, spec=spec(name="alice-web", header_matches=me)), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
            session=carol, spec=pb.InterceptSpec(workload="nope", namespace=namespace,
                                                 target_port=3000)), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_uninstall_restores_deployment_and_service_exactly_and_drops_intercepts(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}]),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    create(apps, core, namespace,
           deployment("api", [{"containerPort": 8080}]),
           service("api", [{"port": 80, "targetPort": 8080}]))
    before = {(kind, name): comparable(raw(kube, kind, namespace, name))
              for kind in ("Deployment", "Service") for name in ("web", "api")}

    await prepare_with_agent(kmanager, kube, namespace, "web")
    _, api_agent = await prepare_with_agent(kmanager, kube, namespace, "api")
    assert raw(kube, "Service", namespace, "api")["spec"]["ports"][0]["targetPort"] == "tp-8080"
    client = await arrive(kmanager)
    created = await kmanager.stub.CreateIntercept(pb.CreateInterceptRequest(
        session=client, spec=pb.InterceptSpec(workload="api", namespace=namespace,
                                              target_port=3000)), timeout=10)
    for_agent = kmanager.stub.WatchInterceptsForAgent(api_agent, timeout=20)
    assert [ic.id for ic in (await for_agent.read()).intercepts] == [created.id]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.UninstallAgents(pb.UninstallAgentsRequest(
            session=client, namespace=namespace, workloads=["nope"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    result = await kmanager.stub.UninstallAgents(pb.UninstallAgentsRequest(
        session=client, namespace=namespace, all=True), timeout=20)
    assert (result.error, sorted(result.restored)) == (
        "", [f"Deployment/api.{namespace}", f"Deployment/web.{namespace}"])
    # the agent learns at once that its intercept is gone: traffic goes back to the app
    assert list((await for_agent.read()).intercepts) == []
    for_agent.cancel()
    assert kmanager.server.state.intercepts == {}
    for (kind, name), spec in before.items():
        assert comparable(raw(kube, kind, namespace, name)) == spec, f"{kind} {name}"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await kmanager.stub.UninstallAgents(pb.UninstallAgentsRequest(
            session=client, namespace=namespace, workloads=["web"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has no traffic-agent" in (err.value.details() or "")


async def test_a_lost_write_race_is_retried_from_a_fresh_read(
        kmanager: Manager, kube: Any, apps: Any, core: Any, namespace: str) -> None:
    create(apps, core, namespace,
           deployment("web", [{"name": "http", "containerPort": 8080}]),
           service("web", [{"name": "http", "port": 80, "targetPort": "http"}]))
    workloads = kmanager.server.workloads
    assert workloads is not None
    adapter = workloads.kube
    real_replace = adapter.replace
    raced: list[tuple[str, str]] = []

    def racing_replace(obj: dict[str, Any]) -> dict[str, Any]:
        # someone else writes between our read and our write, once; the manager is shared,
        # so writes for other tests' namespaces (a session expiring: restore) pass untouched
        if not raced and obj["metadata"]["namespace"] == namespace:
            raced.append((obj["kind"], obj["metadata"]["name"]))
            # their write must land: the controllers' status writes also move the
            # resourceVersion, so they retry from a fresh read as any client would
            for _ in range(10):
                theirs = copy.deepcopy(raw(kube, obj["kind"], namespace,
                                           obj["metadata"]["name"]))
                theirs["metadata"].setdefault("labels", {})["touched"] = "yes"
                try:
                    real_replace(theirs)
                    break
                except KubeConflict:
                    continue
            else:
                raise AssertionError("their write never landed")
        return real_replace(obj)

    adapter.replace = racing_replace  # type: ignore[method-assign]
    try:
        await prepare_with_agent(kmanager, kube, namespace, "web")
    finally:
        adapter.replace = real_replace  # type: ignore[method-assign]
    assert raced == [("Deployment", "web")]  # the Deployment is written first
    dep = raw(kube, "Deployment", namespace, "web")
    # their change survives ours: the lost write was retried from a fresh read
    assert dep["metadata"]["labels"]["touched"] == "yes"
    assert injector.agent_installed(dep)


def test_settings_for_injection_are_documented_fields() -> None:
    from tp_protocol.settings import InterceptSettings

    names = {f.name for f in dataclasses.fields(InterceptSettings)}
    assert {"activate_timeout", "manager_write_retries", "manager_rollout_poll"} <= names
