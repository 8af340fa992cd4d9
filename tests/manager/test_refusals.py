"""What the manager refuses before anything changes: the pure checks behind `tp list`
and `tp intercept` (the traffic-manager's namespace, 0 replicas) and the shared spec
check on CreateIntercept. The same refusals end to end: tests/intercept/
test_sandbox_refusals.py."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from tp_cluster.manager.workloads import no_replicas, reserved, workload_state
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(30)


def _deployment(name: str, namespace: str, replicas: int | None = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"labels": {"app": name}}, "spec": {
        "containers": [{"name": "app", "image": "python",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def _service(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http"}]}}


def test_the_traffic_manager_and_its_namespace_are_not_interceptable() -> None:
    manager = _deployment("traffic-manager", "ambassador")
    assert workload_state("Deployment", manager, [_service("traffic-manager")],
                          "ambassador") == (
        pb.WORKLOAD_STATE_NOT_INTERCEPTABLE,
        "it is the traffic-manager, which every client's connection goes through; "
        "intercept an application workload")
    state, reason = workload_state("Deployment", _deployment("web", "ambassador"),
                                   [_service("web")], "ambassador")
    assert (state, reason) == (
        pb.WORKLOAD_STATE_NOT_INTERCEPTABLE,
        "namespace ambassador is the traffic-manager's; intercept workloads in your "
        "application's namespaces")
    # elsewhere a workload of that name is just a workload
    assert workload_state("Deployment", _deployment("traffic-manager", "team"),
                          [_service("traffic-manager")], "ambassador") == (
        pb.WORKLOAD_STATE_INTERCEPTABLE, "")
    assert reserved("web", "team", "ambassador") == ""
    assert reserved("web", "team", "") == ""


def test_a_workload_scaled_to_zero_is_not_interceptable_with_the_command_that_scales_it(
        ) -> None:
    hint = ("it has 0 replicas, so no pod can take the traffic-agent; scale it up: "
            "kubectl scale deployment/web -n team --replicas=1")
    assert workload_state("Deployment", _deployment("web", "team", replicas=0),
                          [_service("web")], "ambassador") == (
        pb.WORKLOAD_STATE_NOT_INTERCEPTABLE, hint)
    assert no_replicas("Deployment", _deployment("web", "team", replicas=0), "team") == (
        f"not interceptable: {hint}")
    # no `replicas` means 1 (the API server's default)
    assert no_replicas("Deployment", _deployment("web", "team", replicas=None), "team") == ""
    assert workload_state("Deployment", _deployment("web", "team", replicas=3),
                          [_service("web")]) == (pb.WORKLOAD_STATE_INTERCEPTABLE, "")


def test_a_missing_service_is_reported_before_the_replica_count() -> None:
    """The order of `Workloads.resolve`: what cannot be fixed by scaling comes first."""
    state, reason = workload_state("Deployment", _deployment("web", "team", replicas=0), [])
    assert state == pb.WORKLOAD_STATE_NOT_INTERCEPTABLE
    assert reason.startswith("no Service selects the pods of web")


@pytest.mark.parametrize("header", ["x dev", "x-dev:", "é"])
async def test_create_intercept_refuses_a_header_name_that_is_not_an_http_token(
        manager: Any, header: str) -> None:
    session = await manager.stub.ArriveAsClient(pb.ClientInfo(
        name="dev@laptop", namespace="team", version=VERSION), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await manager.stub.CreateIntercept(pb.CreateInterceptRequest(
            session=session, spec=pb.InterceptSpec(
                workload="web", namespace="team", target_port=3000,
                mechanism=pb.MECHANISM_HTTP,
                header_matches=[pb.HeaderMatch(name=header, regex="alice")])), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == (
        f"--http-match header name {header!r} is not a valid HTTP header name (letters, "
        "digits and !#$%&'*+-.^_`|~ only); fix the KEY of KEY=REGEX")
    assert manager.server.state.intercepts == {}
