"""JSON patch, merge patch and strategic merge patch, driven by the schema's metadata."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)
from tp_sandbox.apiserver.resources import by_kind

DEPLOYMENT = by_kind("apps/v1", "Deployment")
SERVICE = by_kind("v1", "Service")
POD = by_kind("v1", "Pod")
assert DEPLOYMENT and SERVICE and POD


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"},
                     "finalizers": ["a"]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{
                    "name": "app", "image": "web:1",
                    "ports": [{"containerPort": 80, "name": "http"},
                              {"containerPort": 443, "name": "https"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                     {"name": "cfg", "mountPath": "/cfg"}],
                }],
                "volumes": [{"name": "data", "emptyDir": {}},
                            {"name": "cfg", "configMap": {"name": "cfg"}}],
            }}}}


def smp(obj: dict[str, Any], patch: Any, resource: Any = DEPLOYMENT) -> dict[str, Any]:
    return apply_patch(obj, json.dumps(patch).encode(), STRATEGIC_MERGE_PATCH, resource)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


def template_patch(**pod_spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}}}


def test_smp_adds_a_container_without_touching_the_existing_one() -> None:
    before = deployment()
    after = smp(before, template_patch(containers=[{"name": "agent", "image": "agent:1"}]))
    assert [c["name"] for c in containers(after)] == ["app", "agent"]
    assert containers(after)[0] == containers(deployment())[0]
    assert before == deployment()  # the stored object is not modified


def test_smp_merges_env_by_name() -> None:
    after = smp(deployment(), template_patch(containers=[
        {"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]))
    assert containers(after)[0]["env"] == [
        {"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert containers(after)[0]["image"] == "web:1"


def test_smp_merges_ports_by_container_port() -> None:
    after = smp(deployment(), template_patch(containers=[
        {"name": "app", "ports": [{"containerPort": 80, "name": "tp-http"},
                                  {"containerPort": 9900}]}]))
    assert containers(after)[0]["ports"] == [
        {"containerPort": 80, "name": "tp-http"}, {"containerPort": 443, "name": "https"},
        {"containerPort": 9900}]


def test_smp_merges_volumes_by_name_and_volume_mounts_by_mount_path() -> None:
    after = smp(deployment(), template_patch(
        volumes=[{"name": "extra", "emptyDir": {}}],
        containers=[{"name": "app", "volumeMounts": [
            {"mountPath": "/data", "readOnly": True}, {"name": "extra", "mountPath": "/x"}]}]))
    assert [v["name"] for v in after["spec"]["template"]["spec"]["volumes"]] == [
        "data", "cfg", "extra"]
    assert containers(after)[0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "cfg", "mountPath": "/cfg"}, {"name": "extra", "mountPath": "/x"}]


def test_smp_merges_service_ports_by_port() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                  {"name": "https", "port": 443}]}}
    after = smp(service, {"spec": {"ports": [{"port": 80, "targetPort": "tp-http"}]}}, SERVICE)
    assert after["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "tp-http"},
                                      {"name": "https", "port": 443}]


def test_smp_replaces_lists_without_a_merge_strategy() -> None:
    after = smp(deployment(), template_patch(containers=[{"name": "app", "args": ["x"]}]))
    after = smp(after, template_patch(containers=[{"name": "app", "args": ["y", "z"]}]))
    assert containers(after)[0]["args"] == ["y", "z"]


def test_smp_null_deletes_a_key_and_maps_merge() -> None:
    after = smp(deployment(), {"metadata": {"labels": {"tier": None, "new": "1"}}})
    assert after["metadata"]["labels"] == {"app": "web", "new": "1"}


def test_smp_delete_directive_removes_a_list_element_by_key() -> None:
    after = smp(deployment(), template_patch(containers=[
        {"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]))
    assert containers(after)[0]["env"] == [{"name": "B", "value": "2"}]


def test_smp_replace_directive_replaces_a_list_or_a_map() -> None:
    after = smp(deployment(), template_patch(containers=[
        {"name": "app", "env": [{"name": "Z", "value": "9"}, {"$patch": "replace"}]}]))
    assert containers(after)[0]["env"] == [{"name": "Z", "value": "9"}]
    after = smp(deployment(), {"metadata": {"labels": {"only": "me", "$patch": "replace"}}})
    assert after["metadata"]["labels"] == {"only": "me"}


def test_smp_delete_directive_on_a_map_removes_it() -> None:
    after = smp(deployment(), {"spec": {"selector": {"$patch": "delete"}}})
    assert "selector" not in after["spec"]


def test_smp_primitive_merge_lists_union_and_delete_from_primitive_list() -> None:
    after = smp(deployment(), {"metadata": {"finalizers": ["b", "a"]}})
    assert after["metadata"]["finalizers"] == ["a", "b"]
    after = smp(after, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert after["metadata"]["finalizers"] == ["b"]


def test_smp_set_element_order_orders_the_merged_list() -> None:
    after = smp(deployment(), template_patch(containers=[{
        "name": "app", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
        "env": [{"name": "A", "value": "10"}]}]))
    assert containers(after)[0]["env"] == [{"name": "B", "value": "2"},
                                           {"name": "A", "value": "10"}]


def test_smp_retain_keys_clears_the_other_volume_source() -> None:
    after = smp(deployment(), template_patch(volumes=[
        {"name": "data", "hostPath": {"path": "/tmp"}, "$retainKeys": ["hostPath", "name"]}]))
    assert after["spec"]["template"]["spec"]["volumes"][0] == {
        "name": "data", "hostPath": {"path": "/tmp"}}


def test_smp_list_item_without_its_merge_key_is_refused() -> None:
    with pytest.raises(errors.Invalid) as caught:
        smp(deployment(), template_patch(containers=[{"image": "x"}]))
    assert "does not contain declared merge key: name" in json.dumps(caught.value.status())


def test_json_patch_applies_operations_and_reports_failures() -> None:
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3},
           {"op": "add", "path": "/metadata/labels/x", "value": "y"}]
    after = apply_patch(deployment(), json.dumps(ops).encode(), JSON_PATCH, DEPLOYMENT)
    assert after["spec"]["replicas"] == 3 and after["metadata"]["labels"]["x"] == "y"
    failing = [{"op": "test", "path": "/spec/replicas", "value": 5}]
    with pytest.raises(errors.Invalid):
        apply_patch(deployment(), json.dumps(failing).encode(), JSON_PATCH, DEPLOYMENT)
    with pytest.raises(errors.BadRequest):
        apply_patch(deployment(), b"{not json", JSON_PATCH, DEPLOYMENT)


def test_merge_patch_replaces_lists_and_null_deletes() -> None:
    patch = template_patch(containers=[{"name": "only", "image": "x"}])
    patch["metadata"] = {"labels": {"tier": None}}
    after = apply_patch(deployment(), json.dumps(patch).encode(),
                        MERGE_PATCH + "; charset=utf-8", DEPLOYMENT)
    assert containers(after) == [{"name": "only", "image": "x"}]
    assert after["metadata"]["labels"] == {"app": "web"}


def test_apply_patch_and_unknown_media_types_get_415() -> None:
    for media in (APPLY_PATCH, "text/plain"):
        with pytest.raises(errors.UnsupportedMediaType) as caught:
            apply_patch(deployment(), b"{}", media, DEPLOYMENT)
        assert caught.value.code == 415


def test_smp_patch_of_a_pod_spec_directly() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": copy.deepcopy(deployment()["spec"]["template"]["spec"])}
    after = smp(pod, {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}, POD)
    assert after["spec"]["containers"][0]["image"] == "web:2"
    assert len(after["spec"]["containers"][0]["env"]) == 2
