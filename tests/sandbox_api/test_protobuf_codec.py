"""The protobuf codec against request bodies captured from the real kubectl 1.37.1.

`protobuf_bodies/*.bin` are the exact bytes kubectl sent (Content-Type
`application/vnd.kubernetes.protobuf`) for `kubectl create ns`, the typed generators
(`create deployment|configmap|secret|service|serviceaccount|role|rolebinding|
clusterrole|clusterrolebinding`) and `kubectl auth can-i` / `auth whoami`, captured
through an HTTPS proxy in front of the sandbox API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tp_sandbox.apiserver import errors, protobuf

BODIES = Path(__file__).parent / "protobuf_bodies"
CAPTURED = sorted(BODIES.glob("*.bin"))


def body(name: str) -> bytes:
    return (BODIES / f"{name}.bin").read_bytes()


def test_every_kubectl_generator_body_was_captured() -> None:
    assert {p.stem for p in CAPTURED} >= {
        "namespace", "deployment", "configmap", "secret", "service", "serviceaccount",
        "role", "rolebinding", "clusterrole", "clusterrolebinding",
        "selfsubjectaccessreview", "selfsubjectreview", "selfsubjectrulesreview"}


def test_kubectl_create_ns_decodes_to_the_namespace_it_names() -> None:
    assert protobuf.decode(body("namespace")) == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "telepresence-demo"}, "spec": {}, "status": {}}


def test_kubectl_create_deployment_decodes_replicas_selector_and_container() -> None:
    obj = protobuf.decode(body("deployment"))
    assert (obj["apiVersion"], obj["kind"]) == ("apps/v1", "Deployment")
    assert obj["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"}}
    spec = obj["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["template"]["metadata"] == {"labels": {"app": "web"}}
    assert spec["template"]["spec"]["containers"] == [{
        "name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 8080}],
        "resources": {}}]


def test_configmap_data_and_secret_bytes_decode_as_json_would_carry_them() -> None:
    assert protobuf.decode(body("configmap"))["data"] == {"greeting": "hello", "b": "2"}
    # Secret data is bytes on the wire and base64 in JSON ("s3cr3t").
    assert protobuf.decode(body("secret"))["data"] == {"password": "czNjcjN0"}


def test_service_port_int_or_string_target_port_decodes_as_an_int() -> None:
    spec = protobuf.decode(body("service"))["spec"]
    assert spec["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80,
                              "targetPort": 8080}]
    assert spec["type"] == "ClusterIP" and spec["selector"] == {"app": "svc"}


def test_rbac_bodies_decode_rules_subjects_and_role_refs() -> None:
    assert protobuf.decode(body("role"))["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    rb = protobuf.decode(body("rolebinding"))
    assert rb["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                               "name": "alice"}]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": "reader"}
    crb = protobuf.decode(body("clusterrolebinding"))
    assert crb["subjects"][0]["kind"] == "Group" and crb["roleRef"]["kind"] == "ClusterRole"


def test_auth_can_i_and_whoami_bodies_decode_to_their_reviews() -> None:
    ssar = protobuf.decode(body("selfsubjectaccessreview"))
    assert ssar["kind"] == "SelfSubjectAccessReview"
    assert ssar["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create",
                                                   "resource": "pods"}}
    ssr = protobuf.decode(body("selfsubjectreview"))
    assert (ssr["apiVersion"], ssr["kind"]) == ("authentication.k8s.io/v1",
                                                "SelfSubjectReview")
    rules = protobuf.decode(body("selfsubjectrulesreview"))
    assert (rules["kind"], rules["spec"]) == ("SelfSubjectRulesReview",
                                              {"namespace": "default"})


def test_a_rules_review_answer_encodes_its_rules_and_incomplete_flag() -> None:
    answer = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "metadata": {}, "spec": {"namespace": "default"},
              "status": {"resourceRules": [{"verbs": ["get"], "apiGroups": [""],
                                            "resources": ["pods"]}],
                         "nonResourceRules": [{"verbs": ["get"],
                                               "nonResourceURLs": ["/healthz"]}],
                         "incomplete": False}}
    assert protobuf.decode(protobuf.encode(answer)) == answer


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.stem)
def test_each_captured_body_round_trips_through_encode(path: Path) -> None:
    decoded = protobuf.decode(path.read_bytes())
    encoded = protobuf.encode(decoded)
    assert encoded.startswith(protobuf.MAGIC)
    assert protobuf.decode(encoded) == decoded
    # What the codec writes is a subset of what Go wrote: Go also emits unset fields.
    assert len(encoded) <= len(path.read_bytes())


def test_a_stored_object_with_times_quantities_and_managed_fields_round_trips() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "n", "uid": "u-1", "resourceVersion": "7",
                     "creationTimestamp": "2026-01-02T03:04:05Z",
                     "deletionGracePeriodSeconds": 0,
                     "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                        "apiVersion": "v1", "time": "2026-01-02T03:04:05Z",
                                        "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                                 "readinessProbe": {"httpGet": {"port": "http",
                                                                "path": "/healthz"},
                                                    "periodSeconds": 3},
                                 "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {
                                     "name": "cm", "key": "k", "optional": False}}}]}],
                 "volumes": [{"name": "v", "configMap": {"name": "cm", "defaultMode": 420}}],
                 "terminationGracePeriodSeconds": 0},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:06Z"}]},
    }
    assert protobuf.decode(protobuf.encode(pod)) == pod


def test_status_errors_encode_with_their_causes() -> None:
    status = errors.Invalid.of("ConfigMap", "", "x", [{
        "reason": "FieldValueRequired", "field": "data", "message": "Required value"}]).status()
    back = protobuf.decode(protobuf.encode(status))
    assert back == status


def test_an_unknown_kind_or_field_is_not_encodable_so_the_server_answers_json() -> None:
    with pytest.raises(protobuf.NotEncodable):
        protobuf.encode({"apiVersion": "meta.k8s.io/v1", "kind": "Table", "rows": []})
    with pytest.raises(protobuf.NotEncodable):
        protobuf.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                         "surprise": 1})


def test_a_body_without_the_magic_or_with_a_truncated_message_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest, match="magic"):
        protobuf.decode(b"{}")
    with pytest.raises(errors.BadRequest, match="malformed"):
        protobuf.decode(body("namespace")[:-5])


def test_accept_headers_choose_protobuf_only_when_it_comes_first() -> None:
    assert protobuf.prefers_protobuf("application/vnd.kubernetes.protobuf,application/json")
    assert not protobuf.prefers_protobuf("application/json, */*")
    assert not protobuf.prefers_protobuf(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not protobuf.prefers_protobuf("")
    assert protobuf.prefers_protobuf(
        "application/json;q=0.5, application/vnd.kubernetes.protobuf")
    assert not protobuf.prefers_protobuf(
        "application/vnd.kubernetes.protobuf;q=0.5, application/json")


def test_every_field_table_entry_names_a_property_of_its_kubernetes_type() -> None:
    from tp_sandbox.apiserver import schema, wire_fields

    for name in wire_fields.FIELDS:
        try:
            properties = set(schema.definition(name).get("properties", {}))
        except schema.SchemaError:
            continue  # embedded-only messages (ProbeHandler, VolumeSource): checked inline
        assert set(protobuf.message(name).by_name) <= properties, name


def test_every_served_kind_has_a_protobuf_form() -> None:
    from tp_sandbox.apiserver.resources import RESOURCES

    assert protobuf.encodable_kinds() == [f"{r.api_version}/{r.kind}" for r in RESOURCES]
