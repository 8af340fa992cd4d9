"""CustomResourceDefinitions through the official client: the CRD's status, a custom
object's CRUD and status subresource, a watch that sees it deleted with its CRD."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from controllers_testing import wait_for
from kubernetes import client, watch

pytestmark = pytest.mark.timeout(60)


def widget_crd(group: str) -> dict[str, Any]:
    return {"metadata": {"name": f"widgets.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object", "properties": {
                                           "spec": {"type": "object", "properties": {
                                               "size": {"type": "integer"}}},
                                           "status": {"type": "object", "properties": {
                                               "phase": {"type": "string"}}}}}}}]}}


def test_a_custom_resource_lives_and_dies_with_its_definition(
        kube: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    group = f"{namespace}.example.com"
    created = ext.create_custom_resource_definition(widget_crd(group))
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert created.status.accepted_names.list_kind == "WidgetList"
    assert created.status.stored_versions == ["v1"]
    obj = custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 3}, "status": {"phase": "ignored on create"}})
    assert obj["spec"] == {"size": 3} and obj["metadata"]["uid"]
    # status is written through its subresource only
    custom.patch_namespaced_custom_object_status(group, "v1", namespace, "widgets", "w",
                                                 {"status": {"phase": "Ready"}})
    custom.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w",
                                          {"spec": {"size": 4}, "status": {"phase": "x"}})
    got = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
    assert got["spec"]["size"] == 4 and got["status"]["phase"] == "Ready"
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "bad"},
            "spec": {"size": "big"}})
    assert err.value.status == 422
    seen: list[str] = []
    rv = custom.list_namespaced_custom_object(group, "v1", namespace,
                                              "widgets")["metadata"]["resourceVersion"]

    def follow() -> None:
        for ev in watch.Watch().stream(custom.list_namespaced_custom_object, group, "v1",
                                       namespace, "widgets", resource_version=rv,
                                       timeout_seconds=10):
            seen.append(ev["type"])
            if ev["type"] == "DELETED":
                return

    watcher = threading.Thread(target=follow, name="widget-watch", daemon=True)
    watcher.start()

    def watching() -> bool:
        # a change the open watch must report proves it is established
        custom.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "w",
                                              {"metadata": {"labels": {"seen": "yes"}}})
        return "MODIFIED" in seen

    wait_for(watching, what="the watch established")
    ext.delete_custom_resource_definition(f"widgets.{group}")
    watcher.join(15)
    assert seen[-1:] == ["DELETED"]
    with pytest.raises(client.ApiException) as err:
        custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
    assert err.value.status == 404
    wait_for(lambda: f"widgets.{group}" not in [
        c.metadata.name for c in ext.list_custom_resource_definition().items], what="gone")


def test_deleting_a_namespace_deletes_the_custom_objects_in_it(
        kube: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    group = f"{namespace}.example.com"
    ext.create_custom_resource_definition(widget_crd(group))
    custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}})
    core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, what="the namespace emptied and removed")
    assert custom.list_namespaced_custom_object(group, "v1", namespace,
                                                "widgets")["items"] == []


def test_objects_owned_by_a_custom_resource_are_collected_after_it(
        kube: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    group = f"{namespace}.example.com"
    ext.create_custom_resource_definition(widget_crd(group))
    owner = custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}})
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "child", "ownerReferences": [{
            "apiVersion": f"{group}/v1", "kind": "Widget", "name": "w",
            "uid": owner["metadata"]["uid"]}]}})
    custom.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "w")

    def collected() -> bool:
        return "child" not in [c.metadata.name for c in
                               core.list_namespaced_config_map(namespace).items]

    # found on the collector's next resync of the child (5s in these tests)
    wait_for(collected, timeout=30, what="the child collected")
