"""LookupDNS: Kubernetes search semantics relative to the client's namespace."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from tp_cluster.manager.dns import candidates
from tp_protocol import manager_pb2 as pb

pytestmark = pytest.mark.timeout(30)

A, AAAA = 1, 28


async def lookup(manager: Any, name: str, qtype: int = A, namespace: str = "demo") -> Any:
    session = await manager.stub.ArriveAsClient(
        pb.ClientInfo(name="dev", namespace=namespace), timeout=5)
    return await manager.stub.LookupDNS(
        pb.DNSRequest(session=session, name=name, qtype=qtype), timeout=5)


async def test_a_single_label_resolves_in_the_clients_namespace(manager: Any) -> None:
    answer = await lookup(manager, "dataprocessingservice")
    assert (answer.rcode, answer.cluster_name) == (0, True)
    assert [(r.name, r.type, r.ip) for r in answer.records] == [
        ("dataprocessingservice.", A, "10.96.3.1")]


async def test_the_same_label_resolves_differently_in_another_namespace(manager: Any) -> None:
    assert (await lookup(manager, "web", namespace="default")).records[0].ip == "10.96.3.2"
    assert (await lookup(manager, "web", namespace="team")).records[0].ip == "10.96.3.3"


async def test_service_dot_namespace_and_the_full_name_resolve(manager: Any) -> None:
    short = await lookup(manager, "dataprocessingservice.demo")
    full = await lookup(manager, "dataprocessingservice.demo.svc.cluster.local.")
    assert short.records[0].ip == full.records[0].ip == "10.96.3.1"
    assert full.records[0].name == "dataprocessingservice.demo.svc.cluster.local."


async def test_kubernetes_default_resolves_from_any_namespace(manager: Any) -> None:
    answer = await lookup(manager, "kubernetes.default", namespace="demo")
    assert answer.cluster_name and answer.records[0].ip == "10.96.0.1"


async def test_an_existing_name_without_records_of_the_type_is_nodata(manager: Any) -> None:
    answer = await lookup(manager, "dataprocessingservice", qtype=AAAA)
    assert (answer.rcode, answer.cluster_name, list(answer.records)) == (0, True, [])


async def test_an_outside_name_is_left_to_the_upstream_resolver(manager: Any) -> None:
    answer = await lookup(manager, "example.com")
    assert (answer.rcode, answer.cluster_name) == (3, False)


async def test_a_missing_name_under_the_cluster_domain_is_an_authoritative_nxdomain(
        manager: Any) -> None:
    answer = await lookup(manager, "nothing.demo.svc.cluster.local")
    assert (answer.rcode, answer.cluster_name) == (3, True)


async def test_an_empty_name_is_an_invalid_argument(manager: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await lookup(manager, ".")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_search_candidates_follow_the_pod_resolv_conf_order() -> None:
    assert candidates("web", "demo", "cluster.local") == (
        ["web.demo.svc.cluster.local", "web.svc.cluster.local", "web.cluster.local"], False)
    assert candidates("web.demo.svc.cluster.local", "x", "cluster.local") == (
        ["web.demo.svc.cluster.local"], True)
    assert candidates("a.b.c.d.e.f", "demo", "cluster.local") == ([], False)
    assert candidates("7.0.244.10.in-addr.arpa", "demo", "cluster.local")[0] == [
        "7.0.244.10.in-addr.arpa"]
