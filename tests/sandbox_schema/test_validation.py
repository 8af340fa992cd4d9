"""Decoding and validation errors, worded as a real API server's."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import by_kind
from tp_sandbox.apiserver.validation import validate

DEPLOYMENT = by_kind("apps/v1", "Deployment")
POD = by_kind("v1", "Pod")
SERVICE = by_kind("v1", "Service")
NAMESPACE = by_kind("v1", "Namespace")
assert DEPLOYMENT and POD and SERVICE and NAMESPACE


def deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1",
                                         "ports": [{"containerPort": 80}]}]}}}}


def service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


def causes_of(obj: dict[str, Any], resource: Any = DEPLOYMENT, old: Any = None
              ) -> list[dict[str, str]]:
    with pytest.raises(errors.Invalid) as caught:
        validate(obj, resource, old=old, field_validation="Strict")
    assert caught.value.code == 422
    details = caught.value.details or {}
    causes: list[dict[str, str]] = details["causes"]
    return causes


def test_a_valid_deployment_passes_without_warnings() -> None:
    assert validate(deployment(), DEPLOYMENT, old=None, field_validation="Strict") == []


def test_strict_lists_all_unknown_fields_in_document_order_in_a_bad_request() -> None:
    d = deployment()
    d["spec"]["foo"] = 1
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(errors.BadRequest) as caught:
        validate(d, DEPLOYMENT, old=None, field_validation="Strict")
    assert caught.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee", unknown field "spec.foo"')


def test_warn_returns_warnings_and_drops_the_unknown_fields() -> None:
    d = deployment()
    d["spec"]["foo"] = 1
    assert validate(d, DEPLOYMENT, old=None, field_validation="Warn") == [
        'unknown field "spec.foo"']
    assert "foo" not in d["spec"]
    d["spec"]["bar"] = 1
    assert validate(d, DEPLOYMENT, old=None, field_validation="Ignore") == []


def test_a_wrong_type_is_a_decoding_error() -> None:
    d = deployment()
    d["spec"]["replicas"] = "three"
    with pytest.raises(errors.BadRequest) as caught:
        validate(d, DEPLOYMENT, old=None, field_validation="Strict")
    assert caught.value.message.endswith(
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas "
        "of type int32")


def test_a_missing_image_and_a_bad_container_name_are_invalid() -> None:
    d = deployment()
    container = d["spec"]["template"]["spec"]["containers"][0]
    del container["image"]
    container["name"] = "App_1"
    causes = causes_of(d)
    assert {"reason": "FieldValueRequired", "message": "Required value",
            "field": "spec.template.spec.containers[0].image"} in causes
    name_cause = next(c for c in causes if c["field"].endswith("containers[0].name"))
    assert name_cause["reason"] == "FieldValueInvalid"
    assert name_cause["message"].startswith(
        'Invalid value: "App_1": a lowercase RFC 1123 label must consist of')


def test_the_invalid_message_names_kind_and_object() -> None:
    d = deployment()
    d["metadata"]["name"] = "Web"
    with pytest.raises(errors.Invalid) as caught:
        validate(d, DEPLOYMENT, old=None, field_validation="Strict")
    assert caught.value.message.startswith(
        'Deployment.apps "Web" is invalid: metadata.name: Invalid value: "Web": '
        "a lowercase RFC 1123 subdomain must consist of")


def test_selector_must_match_template_labels() -> None:
    d = deployment()
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    [cause] = causes_of(d)
    assert cause == {"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                     "message": 'Invalid value: map[string]string{"app":"other"}: '
                                "`selector` does not match template `labels`"}


def test_a_missing_selector_is_required() -> None:
    d = deployment()
    del d["spec"]["selector"]
    assert {"reason": "FieldValueRequired", "message": "Required value",
            "field": "spec.selector"} in causes_of(d)


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    [cause] = causes_of(new, old=old)
    assert cause["field"] == "spec.selector" and cause["message"].endswith("field is immutable")


def test_ports_out_of_range_duplicate_names_and_unsupported_protocols() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 70000, "name": "http"}, {"containerPort": 81, "name": "http"},
        {"containerPort": 82, "protocol": "XTP"}]
    causes = causes_of(d)
    prefix = "spec.template.spec.containers[0].ports"
    assert {"reason": "FieldValueInvalid", "field": f"{prefix}[0].containerPort",
            "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"} in causes
    assert {"reason": "FieldValueDuplicate", "field": f"{prefix}[1].name",
            "message": 'Duplicate value: "http"'} in causes
    assert {"reason": "FieldValueNotSupported", "field": f"{prefix}[2].protocol",
            "message": 'Unsupported value: "XTP": supported values: "SCTP", "TCP", "UDP"'
            } in causes


def test_template_restart_policy_must_be_always() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert causes_of(d) == [{
        "reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
        "message": 'Unsupported value: "Never": supported values: "Always"'}]


def test_volume_mounts_must_name_a_volume() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "x",
                        "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}}
    assert causes_of(pod, POD) == [{"reason": "FieldValueNotFound",
                                    "field": "spec.containers[0].volumeMounts[0].name",
                                    "message": 'Not found: "data"'}]


def test_a_pod_without_containers_is_invalid() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert causes_of(pod, POD) == [{"reason": "FieldValueRequired", "field": "spec.containers",
                                    "message": "Required value"}]


def test_service_ports_names_and_cluster_ip_rules() -> None:
    svc = service()
    svc["spec"]["ports"] = [{"port": 80}, {"port": 0, "name": "b", "targetPort": "Bad_Name"}]
    causes = causes_of(svc, SERVICE)
    assert {"reason": "FieldValueRequired", "field": "spec.ports[0].name",
            "message": "Required value"} in causes
    assert {"reason": "FieldValueInvalid", "field": "spec.ports[1].port",
            "message": "Invalid value: 0: must be between 1 and 65535, inclusive"} in causes
    assert any(c["field"] == "spec.ports[1].targetPort" for c in causes)
    no_ports = service()
    del no_ports["spec"]["ports"]
    assert causes_of(no_ports, SERVICE) == [{"reason": "FieldValueRequired",
                                             "field": "spec.ports", "message": "Required value"}]
    old = service()
    old["spec"]["clusterIP"] = "10.96.0.5"
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.6"
    assert causes_of(new, SERVICE, old=old) == [{
        "reason": "FieldValueInvalid", "field": "spec.clusterIP",
        "message": 'Invalid value: "10.96.0.6": field is immutable'}]


def test_service_and_namespace_names_use_label_formats() -> None:
    svc = service()
    svc["metadata"]["name"] = "1web"
    [cause] = causes_of(svc, SERVICE)
    assert cause["message"].startswith('Invalid value: "1web": a DNS-1035 label must consist')
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    [cause] = causes_of(ns, NAMESPACE)
    assert "a lowercase RFC 1123 label must consist of" in cause["message"]


def test_a_bad_label_value_is_invalid() -> None:
    d = deployment()
    d["metadata"]["labels"] = {"ok": "not ok"}
    [cause] = causes_of(d)
    assert cause["field"] == "metadata.labels"
    assert cause["message"].startswith('Invalid value: "not ok": a valid label must be')


def test_an_unknown_field_validation_directive_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest):
        validate(deployment(), DEPLOYMENT, old=None, field_validation="Loud")


def test_pod_updates_may_only_change_images_and_a_few_fields() -> None:
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x:1"}]}}
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "sandbox-node"
    bound["spec"]["containers"][0]["image"] = "x:2"
    assert validate(bound, POD, old=old, field_validation="Strict") == []
    changed = copy.deepcopy(bound)
    changed["spec"]["containers"][0]["command"] = ["sh"]
    [cause] = causes_of(changed, POD, old=bound)
    assert cause["field"] == "spec" and cause["reason"] == "FieldValueForbidden"
    assert "pod updates may not change fields other than" in cause["message"]


def test_status_is_decoded_but_not_held_to_required_fields() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x"}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "a"}]}}
    assert validate(pod, POD, old=None, field_validation="Strict") == []
