"""Server-side apply with the official client: `utils.create_from_yaml(..., apply=True)`
(DynamicClient.server_side_apply) and `patch_*` with the apply-patch content type;
managedFields of Apply and Update managers; conflicts and force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apiserver_testing import Server
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

APPLY = "application/apply-patch+yaml"


def deployment(replicas: int = 2, image: str = "nginx:1.27", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", **labels}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{
                                      "name": "web", "image": image,
                                      "ports": [{"containerPort": 8080}]}]}}}}


def apply(apps: client.AppsV1Api, namespace: str, body: dict[str, Any], manager: str,
          force: bool = False) -> Any:
    return apps.patch_namespaced_deployment(body["metadata"]["name"], namespace, body,
                                            field_manager=manager, force=force,
                                            _content_type=APPLY)


def managers(obj: Any) -> dict[tuple[str, str], Any]:
    return {(m.manager, m.operation): m.fields_v1 for m in obj.metadata.managed_fields}


def test_create_from_yaml_with_apply_creates_then_updates(
        kube: client.ApiClient, apps: client.AppsV1Api, namespace: str,
        tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(json.dumps(deployment()))
    utils.create_from_yaml(kube, str(manifest), namespace=namespace, apply=True)
    created = apps.read_namespaced_deployment("web", namespace)
    assert created.spec.replicas == 2
    assert managers(created)[("python-client", "Apply")]["f:spec"]["f:replicas"] == {}
    manifest.write_text(json.dumps(deployment(replicas=3, image="nginx:1.28")))
    utils.create_from_yaml(kube, str(manifest), namespace=namespace, apply=True)
    updated = apps.read_namespaced_deployment("web", namespace)
    assert updated.spec.replicas == 3
    assert updated.spec.template.spec.containers[0].image == "nginx:1.28"
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.generation == 2


def test_apply_records_list_map_keys_and_element_nodes_as_fields_v1(
        apps: client.AppsV1Api, namespace: str) -> None:
    d = apply(apps, namespace, deployment(), "kubectl")
    fields = managers(d)[("kubectl", "Apply")]
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container["."] == {} and container["f:image"] == {}
    assert container["f:ports"] == {'k:{"containerPort":8080,"protocol":"TCP"}': {
        ".": {}, "f:containerPort": {}}}
    assert fields["f:spec"]["f:selector"] == {}  # LabelSelector is an atomic map
    assert "f:status" not in fields and "f:name" not in fields["f:metadata"]


def test_another_manager_changing_an_owned_field_conflicts_until_forced(
        apps: client.AppsV1Api, namespace: str) -> None:
    apply(apps, namespace, deployment(), "kubectl")
    with pytest.raises(ApiException) as err:
        apply(apps, namespace, deployment(replicas=5), "other")
    status = json.loads(err.value.body)
    assert err.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "kubectl": '
                                 ".spec.replicas")
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                            "message": 'conflict with "kubectl"',
                                            "field": ".spec.replicas"}]
    forced = apply(apps, namespace, deployment(replicas=5), "other", force=True)
    assert forced.spec.replicas == 5
    owners = managers(forced)
    assert "f:replicas" not in owners[("kubectl", "Apply")]["f:spec"]
    assert owners[("other", "Apply")]["f:spec"]["f:replicas"] == {}


def test_applying_the_same_value_as_another_manager_shares_the_field(
        apps: client.AppsV1Api, namespace: str) -> None:
    apply(apps, namespace, deployment(), "kubectl")
    shared = apply(apps, namespace, deployment(), "helper")
    owners = managers(shared)
    assert owners[("kubectl", "Apply")]["f:spec"]["f:replicas"] == {}
    assert owners[("helper", "Apply")]["f:spec"]["f:replicas"] == {}


def test_an_update_takes_over_what_it_changes_and_the_next_apply_conflicts_with_it(
        apps: client.AppsV1Api, namespace: str) -> None:
    apply(apps, namespace, deployment(), "kubectl")
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 4}},
                                     field_manager="kubectl-edit")
    edited = apps.read_namespaced_deployment("web", namespace)
    owners = managers(edited)
    assert owners[("kubectl-edit", "Update")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners[("kubectl", "Apply")]["f:spec"]
    with pytest.raises(ApiException) as err:
        apply(apps, namespace, deployment(), "kubectl")
    message = json.loads(err.value.body)["message"]
    assert message.startswith('Apply failed with 1 conflict: conflict with "kubectl-edit" '
                              "using apps/v1 at ")
    assert message.endswith(": .spec.replicas")


def test_a_field_dropped_from_the_applied_config_is_removed_unless_someone_else_owns_it(
        apps: client.AppsV1Api, namespace: str) -> None:
    apply(apps, namespace, deployment(tier="web", team="a"), "kubectl")
    apps.patch_namespaced_deployment("web", namespace,
                                     {"metadata": {"labels": {"team": "b"}}},
                                     field_manager="labeler")
    again = apply(apps, namespace, deployment(), "kubectl")
    assert again.metadata.labels == {"app": "web", "team": "b"}  # tier gone, team kept


def test_apply_without_a_field_manager_is_invalid(server: Server, namespace: str) -> None:
    resp = server.raw("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
                      headers={"Content-Type": APPLY},
                      body=json.dumps(deployment()).encode())
    status = json.loads(resp.data)
    assert (resp.status, status["reason"]) == (422, "Invalid")
    assert "fieldManager: Required value: is required for apply patch" in status["message"]


def test_every_write_records_an_update_manager_from_the_user_agent(
        core: client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"},
                                                       "data": {"a": "1"}})
    entry = cm.metadata.managed_fields[0]
    assert (entry.manager, entry.operation, entry.fields_type) == (
        "OpenAPI-Generator", "Update", "FieldsV1")
    assert entry.fields_v1 == {"f:data": {".": {}, "f:a": {}}}  # it made the map: owns it


def test_force_on_a_non_apply_patch_is_invalid(apps: client.AppsV1Api, namespace: str) -> None:
    apply(apps, namespace, deployment(), "kubectl")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 1}},
                                         field_manager="x", force=True)
    assert err.value.status == 422
    assert "force: Forbidden: may not be specified for non-apply patch" in \
        json.loads(err.value.body)["message"]


def test_an_apply_to_a_missing_object_creates_it_with_201(server: Server,
                                                           namespace: str) -> None:
    resp = server.raw("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/fresh"
                               "?fieldManager=tool", headers={"Content-Type": APPLY},
                      body=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\n"
                           b"data: {a: '1'}\n")
    created = json.loads(resp.data)
    assert resp.status == 201
    assert created["data"] == {"a": "1"} and created["metadata"]["managedFields"][0][
        "operation"] == "Apply"


def test_an_applied_config_carrying_managed_fields_is_refused(server: Server,
                                                               namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "m", "managedFields": [{"manager": "x", "operation": "Apply"}]}}
    resp = server.raw("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/m"
                               "?fieldManager=tool", headers={"Content-Type": APPLY},
                      body=json.dumps(body).encode())
    assert resp.status == 400
    assert json.loads(resp.data)["message"].startswith("metadata.managedFields must be nil")
