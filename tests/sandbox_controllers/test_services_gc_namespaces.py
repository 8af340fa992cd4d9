"""Endpoints/EndpointSlices following readiness, garbage collection on background,
foreground and orphan deletion, and namespace deletion."""

from __future__ import annotations

from typing import Any

import pytest
from controllers_testing import mark_ready, pods_of, rs_of, wait_for, web
from kubernetes import client

pytestmark = pytest.mark.timeout(90)


def service(name: str = "web", selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name, "labels": {"team": "a"}}, "spec": spec}


def slices(kube: client.ApiClient, ns: str, svc: str) -> list[Any]:
    d = client.DiscoveryV1Api(kube)
    return d.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={svc}").items


def test_endpoints_and_slices_follow_pod_readiness_with_named_ports(
        apps: client.AppsV1Api, core: client.CoreV1Api, kube: client.ApiClient,
        namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2))
    core.create_namespaced_service(namespace, service(selector={"app": "web"}))
    a, b = wait_for(lambda: len(pods_of(core, namespace)) == 2 and sorted(
        p.metadata.name for p in pods_of(core, namespace)))
    mark_ready(core, namespace, a, "10.244.0.20")
    mark_ready(core, namespace, b, "10.244.0.21", ready=False)

    def endpoints() -> Any:
        ep = core.read_namespaced_endpoints("web", namespace)
        s = ep.subsets or []
        return len(s) == 1 and s[0].addresses and s[0].not_ready_addresses and s[0]

    subset = wait_for(endpoints, what="ready and not-ready addresses")
    assert [x.ip for x in subset.addresses] == ["10.244.0.20"]
    assert [x.ip for x in subset.not_ready_addresses] == ["10.244.0.21"]
    assert subset.addresses[0].target_ref.name == a
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("http", 8080, "TCP")]

    def slice_ready() -> Any:
        got = slices(kube, namespace, "web")
        return len(got) == 1 and got[0].endpoints and {
            e.target_ref.name: e.conditions.ready for e in got[0].endpoints}

    assert wait_for(slice_ready) == {a: True, b: False}
    [s] = slices(kube, namespace, "web")
    assert s.address_type == "IPv4"
    assert s.metadata.labels["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert s.metadata.owner_references[0].kind == "Service"
    assert [(p.name, p.port) for p in s.ports] == [("http", 8080)]

    mark_ready(core, namespace, b, "10.244.0.21")
    wait_for(lambda: len(core.read_namespaced_endpoints("web", namespace).subsets[0].addresses)
             == 2, what="both ready")
    wait_for(lambda: slice_ready() == {a: True, b: True}, what="both ready in the slice")


def test_services_without_selector_keep_their_manual_endpoints(
        core: client.CoreV1Api, kube: client.ApiClient, namespace: str) -> None:
    core.create_namespaced_service(namespace, service("manual"))
    core.create_namespaced_endpoints(namespace, {
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "172.30.0.10"}], "ports": [{"port": 53}]}]})
    # a selector-full neighbour proves the controllers have looked at this namespace
    core.create_namespaced_service(namespace, service("probe", {"app": "none"}))
    wait_for(lambda: slices(kube, namespace, "probe"), what="slice of the probe service")
    ep = core.read_namespaced_endpoints("manual", namespace)
    assert ep.subsets[0].addresses[0].ip == "172.30.0.10"
    assert slices(kube, namespace, "manual") == []
    kubernetes = core.read_namespaced_endpoints("kubernetes", "default")
    assert kubernetes.subsets  # the API server's own, untouched


def test_background_deletion_collects_replicasets_and_pods(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2))
    wait_for(lambda: len(pods_of(core, namespace)) == 2)
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(lambda: not rs_of(apps, namespace) and not pods_of(core, namespace, live=False),
             what="replicaset and pods collected")


def test_foreground_deletion_removes_dependents_before_the_owner(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2))
    wait_for(lambda: len(pods_of(core, namespace)) == 2)
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")
    seen_waiting = []

    def gone() -> bool:
        try:
            d = apps.read_namespaced_deployment("web", namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        assert d.metadata.deletion_timestamp is not None
        seen_waiting.append(list(d.metadata.finalizers or []))
        return False

    wait_for(gone, what="deployment gone")
    assert not rs_of(apps, namespace) and not pods_of(core, namespace, live=False)
    assert seen_waiting and seen_waiting[0] == ["foregroundDeletion"]


def test_orphan_deletion_leaves_the_replicaset_without_owner(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=1))
    wait_for(lambda: len(pods_of(core, namespace)) == 1)
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Orphan")

    def deployment_gone() -> bool:
        try:
            apps.read_namespaced_deployment("web", namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(deployment_gone, what="deployment gone")
    [rs] = rs_of(apps, namespace)
    assert not rs.metadata.owner_references
    assert len(pods_of(core, namespace)) == 1


def test_deleting_a_namespace_removes_its_contents_and_then_itself(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2))
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}})
    core.create_namespaced_service(namespace, service(selector={"app": "web"}))
    wait_for(lambda: len(pods_of(core, namespace)) == 2)
    core.delete_namespace(namespace)

    def ns_gone() -> bool:
        try:
            core.read_namespace(namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(ns_gone, timeout=30, what="namespace gone")
    assert not core.list_namespaced_config_map(namespace).items
    assert not core.list_namespaced_pod(namespace).items


def test_an_object_whose_owner_never_existed_is_collected_but_one_with_a_live_owner_stays(
        core: client.CoreV1Api, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})

    def ref(name: str, uid: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid}

    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "kept", "ownerReferences": [ref("owner", owner.metadata.uid)]}})
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "dangling", "ownerReferences": [ref("ghost", "00000000-dead")]}})
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "half", "ownerReferences": [ref("owner", owner.metadata.uid),
                                            ref("ghost", "00000000-dead")]}})

    def names() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}

    wait_for(lambda: "dangling" not in names(), what="dangling collected")
    wait_for(lambda: len(core.read_namespaced_config_map("half", namespace)
                         .metadata.owner_references) == 1, what="dangling reference removed")
    assert {"owner", "kept", "half"} <= names()
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: not ({"kept", "half"} & names()), what="dependents collected")
