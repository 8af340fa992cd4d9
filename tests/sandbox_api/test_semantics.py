"""Object semantics: names, conflicts, validation errors, subresources, finalizers,
deletion flavours, Services' addresses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(60)

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c",
                                                           "image": "busybox"}]}}}}


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def test_generate_name_gets_a_random_suffix(core: client.CoreV1Api, namespace: str) -> None:
    a = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "cfg-"}})
    b = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "cfg-"}})
    assert a.metadata.name.startswith("cfg-") and len(a.metadata.name) == len("cfg-") + 5
    assert a.metadata.name != b.metadata.name


def test_creating_an_existing_name_is_409_already_exists(core: client.CoreV1Api,
                                                         namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    st = status_of(err.value)
    assert (err.value.status, st["reason"]) == (409, "AlreadyExists")
    assert st["message"] == 'configmaps "dup" already exists'
    assert st["details"] == {"name": "dup", "kind": "configmaps"}  # no empty "group"


def test_an_update_with_a_stale_resource_version_is_409_conflict(core: client.CoreV1Api,
                                                                 namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"},
                                                       "data": {"a": "1"}})
    cm.data = {"a": "2"}
    core.replace_namespaced_config_map("c", namespace, cm)
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", namespace, cm)
    assert (err.value.status, status_of(err.value)["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status_of(err.value)["message"]


def test_a_missing_object_is_404_with_details(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", namespace)
    st = status_of(err.value)
    assert (err.value.status, st["reason"], st["message"]) == (
        404, "NotFound", 'pods "nope" not found')


def test_a_cluster_ip_outside_the_range_is_422_with_the_upstream_message(
        core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(namespace, {
            "metadata": {"name": "x"},
            "spec": {"clusterIP": "1.2.3.4", "ports": [{"port": 80}]}})
    st = status_of(err.value)
    assert (err.value.status, st["reason"]) == (422, "Invalid")
    assert st["message"] == (
        'Service "x" is invalid: spec.clusterIPs: Invalid value: []string{"1.2.3.4"}: '
        "failed to allocate IP 1.2.3.4: the provided IP (1.2.3.4) is not in the valid "
        "range. The range of valid IPs is 10.96.0.0/16")
    assert st["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.clusterIPs",
        "message": 'Invalid value: []string{"1.2.3.4"}: failed to allocate IP 1.2.3.4: '
                   "the provided IP (1.2.3.4) is not in the valid range. The range of valid "
                   "IPs is 10.96.0.0/16"}]


def test_services_get_cluster_ips_node_ports_and_headless_none(core: client.CoreV1Api,
                                                                namespace: str) -> None:
    a = core.create_namespaced_service(namespace, {"metadata": {"name": "a"},
                                                   "spec": {"ports": [{"port": 80}]}})
    b = core.create_namespaced_service(namespace, {
        "metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    h = core.create_namespaced_service(namespace, {
        "metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})
    assert a.spec.cluster_ip.startswith("10.96.") and a.spec.cluster_ips == [a.spec.cluster_ip]
    assert b.spec.cluster_ip not in (a.spec.cluster_ip, "None")
    assert 30000 <= b.spec.ports[0].node_port <= 32767
    assert h.spec.cluster_ip == "None"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(namespace, {
            "metadata": {"name": "c"},
            "spec": {"clusterIP": a.spec.cluster_ip, "ports": [{"port": 80}]}})
    assert "provided IP is already allocated" in status_of(err.value)["message"]


def test_the_kubernetes_service_points_at_the_in_sandbox_api_address(
        core: client.CoreV1Api) -> None:
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.96.0.1"
    assert (svc.spec.ports[0].port, svc.spec.ports[0].target_port) == (443, 6443)
    assert svc.metadata.labels == {"component": "apiserver", "provider": "kubernetes"}
    ep = core.read_namespaced_endpoints("kubernetes", "default")
    assert ep.subsets[0].addresses[0].ip == "172.30.0.1"
    assert ep.subsets[0].ports[0].port == 6443
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert core.read_namespaced_service_account("default", ns).metadata.name == "default"


def test_a_new_namespace_gets_a_default_service_account(core: client.CoreV1Api,
                                                        namespace: str) -> None:
    assert core.read_namespaced_service_account("default", namespace).metadata.uid


def test_generation_moves_on_spec_changes_only(apps: client.AppsV1Api, namespace: str) -> None:
    d = apps.create_namespaced_deployment(namespace, deployment("d"))
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("d", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment_status("d", namespace, {"status": {"replicas": 1}})
    assert (d.metadata.generation, d.status.replicas) == (1, 1)
    d = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 3}})
    assert d.metadata.generation == 2


def test_the_main_resource_ignores_status_and_the_status_subresource_ignores_spec(
        apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("d"))
    d = apps.read_namespaced_deployment("d", namespace)
    d.status.replicas = 7
    d = apps.replace_namespaced_deployment("d", namespace, d)
    assert not d.status.replicas
    d.status.replicas = 5
    d.spec.replicas = 9
    d = apps.replace_namespaced_deployment_status("d", namespace, d)
    assert (d.status.replicas, d.spec.replicas) == (5, 1)
    assert apps.read_namespaced_deployment_status("d", namespace).status.replicas == 5


def test_a_no_op_update_keeps_the_resource_version(core: client.CoreV1Api,
                                                   namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"},
                                                       "data": {"a": "1"}})
    again = core.replace_namespaced_config_map("c", namespace, cm)
    assert again.metadata.resource_version == cm.metadata.resource_version


@pytest.mark.parametrize("kind", ["deployment", "replica_set"])
def test_the_scale_subresource_reads_and_sets_replicas(apps: client.AppsV1Api, namespace: str,
                                                       kind: str) -> None:
    body = deployment("s", 2)
    getattr(apps, f"create_namespaced_{kind}")(namespace, body)
    scale = getattr(apps, f"read_namespaced_{kind}_scale")("s", namespace)
    assert (scale.kind, scale.spec.replicas, scale.status.selector) == ("Scale", 2, "app=s")
    scale.spec.replicas = 4
    getattr(apps, f"replace_namespaced_{kind}_scale")("s", namespace, scale)
    getattr(apps, f"patch_namespaced_{kind}_scale")("s", namespace, {"spec": {"replicas": 5}})
    assert getattr(apps, f"read_namespaced_{kind}")("s", namespace).spec.replicas == 5


def test_an_object_with_finalizers_is_only_marked_until_the_last_is_removed(
        core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "f", "finalizers": ["example.com/a", "example.com/b"]}})
    core.delete_namespaced_config_map("f", namespace)
    cm = core.read_namespaced_config_map("f", namespace)
    assert cm.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("f", namespace, [
        {"op": "remove", "path": "/metadata/finalizers/0"}])
    assert core.read_namespaced_config_map("f", namespace).metadata.finalizers == [
        "example.com/b"]
    core.patch_namespaced_config_map("f", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("f", namespace)
    assert err.value.status == 404


@pytest.mark.parametrize(("policy", "finalizer"), [("Foreground", "foregroundDeletion"),
                                                   ("Orphan", "orphan")])
def test_foreground_and_orphan_deletion_leave_a_finalizer_for_the_gc(
        apps: client.AppsV1Api, namespace: str, policy: str, finalizer: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("g"))
    apps.delete_namespaced_deployment("g", namespace, propagation_policy=policy)
    d = apps.read_namespaced_deployment("g", namespace)
    assert d.metadata.finalizers == [finalizer] and d.metadata.deletion_timestamp


def test_background_deletion_removes_at_once(apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("b"))
    st = apps.delete_namespaced_deployment("b", namespace, propagation_policy="Background")
    assert st["status"] == "Success"
    assert apps.list_namespaced_deployment(namespace).items == []


def test_delete_preconditions_are_checked(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "p"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("p", namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="wrong")))
    assert err.value.status == 409
    assert "Precondition failed: UID in precondition: wrong" in status_of(err.value)["message"]


def test_dry_run_changes_nothing(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "d"}},
                                                dry_run="All")
    assert created.metadata.name == "d"
    assert core.list_namespaced_config_map(namespace, field_selector="metadata.name=d"
                                           ).items == []
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "d"}})
    core.patch_namespaced_config_map("d", namespace, {"data": {"x": "y"}}, dry_run="All")
    core.delete_namespaced_config_map("d", namespace, dry_run="All")
    assert core.read_namespaced_config_map("d", namespace).data is None


def test_a_terminating_namespace_refuses_new_content_until_finalized(
        core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert (ns.status.phase, ns.spec.finalizers) == ("Terminating", ["kubernetes"])
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403
    assert status_of(err.value)["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace doomed '
        "because it is being terminated")
    core.replace_namespace_finalize("doomed", {"metadata": {"name": "doomed"},
                                               "spec": {"finalizers": []}})
    with pytest.raises(ApiException) as err:
        core.read_namespace("doomed")
    assert err.value.status == 404


def _ready_node(core: client.CoreV1Api, name: str) -> None:
    core.create_node({"metadata": {"name": name}})
    core.patch_node_status(name, {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}]}})


def test_binding_assigns_the_node_once(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, POD)
    core.create_namespaced_binding(namespace, {
        "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False)
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.spec.node_name == "n1"
    assert [c.type for c in pod.status.conditions] == ["PodScheduled"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("p", namespace, {
            "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n2"}})
    assert err.value.status == 409


def test_a_pod_on_a_ready_node_is_deleted_gracefully(core: client.CoreV1Api,
                                                     namespace: str) -> None:
    node = f"node-{namespace}"
    _ready_node(core, node)
    pod = dict(POD, spec={**POD["spec"], "nodeName": node,  # type: ignore[dict-item]
                          "terminationGracePeriodSeconds": 20})
    core.create_namespaced_pod(namespace, pod)
    core.delete_namespaced_pod("p", namespace)
    marked = core.read_namespaced_pod("p", namespace)
    assert marked.metadata.deletion_grace_period_seconds == 20
    assert marked.metadata.deletion_timestamp is not None
    # The kubelet reports the containers stopping: the pod is still there.
    core.patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Succeeded"}})
    assert core.read_namespaced_pod("p", namespace).status.phase == "Succeeded"
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)  # the kubelet's
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", namespace)
    assert err.value.status == 404


def test_a_terminating_pod_with_a_finalizer_goes_when_the_kubelet_and_finalizer_are_done(
        core: client.CoreV1Api, namespace: str) -> None:
    node = f"node-f-{namespace}"
    _ready_node(core, node)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p", "finalizers": ["x/y"]},
                                           "spec": {**POD["spec"], "nodeName": node}})
    core.delete_namespaced_pod("p", namespace)
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.metadata.deletion_grace_period_seconds == 0
    core.patch_namespaced_pod("p", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", namespace)
    assert err.value.status == 404


def test_an_unscheduled_pod_is_deleted_at_once(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, POD)
    deleted = core.delete_namespaced_pod("p", namespace)
    assert deleted.metadata.name == "p"
    assert core.list_namespaced_pod(namespace).items == []


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api, namespace: str) -> None:
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"c{i}"}})
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == ["c0", "c1", "c2", "c3", "c4", "kube-root-ca.crt"]
