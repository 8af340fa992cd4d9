"""Issue 13's wire fidelity with the official client and raw HTTPS: DELETE bodies per
kind, Status details, review groups in discovery, protobuf responses, /openapi/v2 and the
verbose health checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
from apiserver_testing import ADMIN_TOKEN, Server
from kubernetes import client
from tp_sandbox.apiserver import protobuf
from tp_sandbox.apiserver.resources import RESOURCES

BODIES = Path(__file__).parent / "protobuf_bodies"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# A minimal valid object of every served kind (name "d"); lists are non-empty, as the
# wire cannot tell an empty list from an absent one.
OBJECTS: dict[str, dict[str, Any]] = {
    "Namespace": {},
    "Pod": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    "Service": {"spec": {"ports": [{"port": 80}]}},
    "Endpoints": {},
    "ConfigMap": {"data": {"k": "v"}},
    "Secret": {"stringData": {"k": "v"}},
    "ServiceAccount": {},
    "Node": {},
    "Event": {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R",
              "message": "m", "type": "Normal"},
    "Deployment": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
    "ReplicaSet": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
    "EndpointSlice": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"],
                                                           "conditions": {"ready": True}}]},
    "Role": {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]},
    "RoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": "r"}},
    "ClusterRole": {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
    "ClusterRoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                       "kind": "ClusterRole", "name": "r"}},
    "PersistentVolumeClaim": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {
        "requests": {"storage": "1Gi"}}}},
    "StatefulSet": {"spec": {"replicas": 0, "serviceName": "x", "selector": {
        "matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
    "DaemonSet": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"nodeSelector": {"none": "x"},
                                                     "containers": [{"name": "c",
                                                                     "image": "busybox"}]}}}},
    "ControllerRevision": {"revision": 1, "data": {}},
    "Job": {"spec": {"suspend": True, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
    "CronJob": {"spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox"}]}}}}}},
    "CustomResourceDefinition": {"spec": {
        "group": "wire.test", "scope": "Namespaced",
        "names": {"plural": "wires", "singular": "wire", "kind": "Wire", "listKind": "WireList"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object",
                                "x-kubernetes-preserve-unknown-fields": True}}}]}},
}
# Upstream registries with ReturnDeletedObject; every other kind answers a Status.
RETURNS_OBJECT = {"Namespace", "Pod", "Service", "ServiceAccount", "Node",
                  "PersistentVolumeClaim", "CustomResourceDefinition"}


def collection(rt: Any, namespace: str) -> str:
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    return f"{base}/namespaces/{namespace}/{rt.plural}" if rt.namespaced \
        else f"{base}/{rt.plural}"


def json_request(server: Server, method: str, path: str, obj: Any = None) -> Any:
    resp = server.raw(method, path, headers={"Content-Type": "application/json"},
                      body=json.dumps(obj).encode() if obj is not None else None)
    return resp.status, json.loads(resp.data)


def test_every_kind_has_an_object_to_delete() -> None:
    assert {rt.kind for rt in RESOURCES} <= set(OBJECTS)


@pytest.mark.parametrize("rt", RESOURCES, ids=lambda rt: rt.kind)
def test_delete_answers_the_object_or_a_status_and_protobuf_reads_equal_json(
        server: Server, namespace: str, rt: Any) -> None:
    name = f"d{namespace}" if not rt.namespaced else "d"
    if rt.kind == "CustomResourceDefinition":  # named <plural>.<group>
        name = "wires.wire.test"
    obj = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": name},
           **OBJECTS[rt.kind]}
    status, created = json_request(server, "POST", collection(rt, namespace), obj)
    assert status == 201, created
    as_protobuf = server.raw("GET", f"{collection(rt, namespace)}/{name}",
                             headers={"Accept": f"{PROTOBUF},application/json"})
    assert as_protobuf.headers["Content-Type"] == PROTOBUF
    assert protobuf.decode(as_protobuf.data) == created
    status, body = json_request(server, "DELETE", f"{collection(rt, namespace)}/{name}")
    assert status == 200, body
    if rt.kind in RETURNS_OBJECT:
        assert (body["kind"], body["metadata"]["uid"]) == (rt.kind, created["metadata"]["uid"])
    else:
        details = {"name": name, "kind": rt.plural, "uid": created["metadata"]["uid"]}
        if rt.group:
            details["group"] = rt.group
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "details": details}
    # The deletion as a protobuf watch client (client-go's typed informers) sees it.
    events = protobuf_watch_until_deleted(
        server, f"{collection(rt, namespace)}?watch=1&timeoutSeconds=10"
                f"&resourceVersion={created['metadata']['resourceVersion']}"
                f"&fieldSelector=metadata.name%3D{name}")
    # A namespace waits for its (absent here) namespace controller: Terminating.
    assert events[-1][0] == ("MODIFIED" if rt.kind == "Namespace" else "DELETED")
    assert events[-1][1]["metadata"]["uid"] == created["metadata"]["uid"]
    assert (events[-1][1]["apiVersion"], events[-1][1]["kind"]) == (rt.api_version, rt.kind)


def protobuf_watch_until_deleted(server: Server, path: str) -> list[tuple[str, Any]]:
    """The events of a protobuf watch up to the first DELETED or deletionTimestamp (or the
    stream's end)."""
    http = urllib3.PoolManager(ca_certs=str(server.ca), cert_reqs="CERT_REQUIRED")
    resp = http.request("GET", server.url + path, preload_content=False, retries=False,
                        headers={"Accept": f"{PROTOBUF},application/json",
                                 "Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.headers["Content-Type"] == f"{PROTOBUF};stream=watch"
    data, events = b"", []
    for chunk in resp.stream(1024, decode_content=False):
        data += chunk
        events = protobuf.watch_events(data)
        if events and (events[-1][0] == "DELETED"
                       or "deletionTimestamp" in events[-1][1]["metadata"]):
            break
    resp.release_conn()
    return events


def test_the_official_client_reads_a_deleted_service_and_pod_back(
        core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_service(namespace, {"metadata": {"name": "s"},
                                               "spec": {"ports": [{"port": 80}]}})
    deleted = core.delete_namespaced_service("s", namespace)
    assert isinstance(deleted, client.V1Service) and deleted.metadata.name == "s"
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    pod = core.delete_namespaced_pod("p", namespace)
    assert isinstance(pod, client.V1Pod) and pod.metadata.name == "p"
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    st = core.delete_namespaced_config_map("c", namespace)  # typed `object`: a dict
    assert st["status"] == "Success"
    assert "group" not in st["details"] and st["details"]["kind"] == "configmaps"


def test_a_deletion_held_by_a_finalizer_answers_the_object_with_its_timestamp(
        core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "held", "finalizers": ["example.com/hold"]}})
    held = core.delete_namespaced_config_map("held", namespace)
    assert held["kind"] == "ConfigMap" and held["metadata"]["deletionTimestamp"]
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})


def test_a_core_error_status_has_no_empty_group_in_its_details(server: Server) -> None:
    status, body = json_request(server, "GET", "/api/v1/namespaces/default/configmaps/nope")
    assert status == 404
    assert body["details"] == {"name": "nope", "kind": "configmaps"}
    status, body = json_request(server, "GET", "/apis/apps/v1/namespaces/default/"
                                               "deployments/nope")
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_discovery_lists_the_authentication_and_authorization_groups(server: Server) -> None:
    groups = {g["name"]: g for g in json_request(server, "GET", "/apis")[1]["groups"]}
    assert groups["authentication.k8s.io"]["preferredVersion"]["groupVersion"] == \
        "authentication.k8s.io/v1"
    assert "authorization.k8s.io" in groups
    authz = json_request(server, "GET", "/apis/authorization.k8s.io/v1")[1]
    ssar = next(r for r in authz["resources"] if r["name"] == "selfsubjectaccessreviews")
    assert (ssar["kind"], ssar["verbs"], ssar["namespaced"]) == (
        "SelfSubjectAccessReview", ["create"], False)
    authn = json_request(server, "GET", "/apis/authentication.k8s.io/v1")[1]
    assert [r["name"] for r in authn["resources"]] == ["selfsubjectreviews", "tokenreviews"]
    local = next(r for r in authz["resources"] if r["name"] == "localsubjectaccessreviews")
    assert local["namespaced"]


def test_a_protobuf_create_is_answered_in_protobuf_when_the_client_prefers_it(
        server: Server) -> None:
    raw = (BODIES / "configmap.bin").read_bytes()
    ns = "pbcreate"
    json_request(server, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    resp = server.raw("POST", f"/api/v1/namespaces/{ns}/configmaps?fieldManager=kubectl-create",
                      headers={"Content-Type": PROTOBUF,
                               "Accept": f"{PROTOBUF},application/json"}, body=raw)
    # The captured body names namespace "default": a mismatch is the same 400 as JSON's.
    assert resp.status == 400
    assert resp.headers["Content-Type"] == PROTOBUF
    assert protobuf.decode(resp.data)["reason"] == "BadRequest"
    resp = server.raw("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl",
                      headers={"Content-Type": PROTOBUF,
                               "Accept": f"{PROTOBUF},application/json"}, body=raw)
    assert (resp.status, resp.headers["Content-Type"]) == (201, PROTOBUF)
    created = protobuf.decode(resp.data)
    assert created["data"] == {"greeting": "hello", "b": "2"}
    assert created["metadata"]["uid"] and created["metadata"]["managedFields"][0][
        "manager"] == "kubectl"
    # The same object read as JSON is the same object.
    _, again = json_request(server, "GET", "/api/v1/namespaces/default/configmaps/cfg")
    assert again == created


def test_a_table_or_discovery_request_stays_json_for_a_protobuf_client(server: Server) -> None:
    resp = server.raw("GET", "/api/v1", headers={"Accept": f"{PROTOBUF},application/json"})
    assert resp.headers["Content-Type"].startswith("application/json")


def test_openapi_v2_describes_the_same_paths_and_definitions_as_v3(server: Server) -> None:
    status, v2 = json_request(server, "GET", "/openapi/v2")
    assert status == 200 and v2["swagger"] == "2.0"
    index = json_request(server, "GET", "/openapi/v3")[1]
    for entry in index["paths"].values():
        v3 = json.loads(server.raw("GET", entry["serverRelativeURL"]).data)
        assert set(v3["paths"]) <= set(v2["paths"])
        assert set(v3["components"]["schemas"]) <= set(v2["definitions"])
    post = v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]
    assert post["parameters"][0] == {"name": "body", "in": "body", "required": True,
                                     "schema": {"$ref": "#/definitions/io.k8s.api.apps.v1."
                                                        "Deployment"}}
    assert post["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment",
                                                       "version": "v1"}
    assert "#/components/" not in json.dumps(v2)


@pytest.mark.parametrize("endpoint", ["healthz", "livez", "readyz"])
def test_verbose_health_checks_list_each_check_as_upstream(server: Server,
                                                          endpoint: str) -> None:
    lines = server.raw("GET", f"/{endpoint}?verbose", token=None).data.decode().splitlines()
    assert lines[0] == "[+]ping ok"
    assert "[+]etcd ok" in lines
    assert lines[-1] == f"{endpoint} check passed"
    assert server.raw("GET", f"/{endpoint}", token=None).data == b"ok"
    assert server.raw("GET", f"/{endpoint}/ping", token=None).data == b"ok"
    excluded = server.raw("GET", f"/{endpoint}?verbose&exclude=etcd", token=None).data.decode()
    assert "etcd ok" not in excluded.replace("etcd-readiness", "")
    assert server.raw("GET", f"/{endpoint}/nonsense", token=None).status == 404


def test_secret_string_data_is_merged_into_data_and_never_returned(
        core: client.CoreV1Api, namespace: str) -> None:
    # As upstream's conversion: stringData is write-only and wins over a data key.
    created = core.create_namespaced_secret(namespace, {
        "metadata": {"name": "s"}, "data": {"a": "b2xk", "keep": "eA=="},
        "stringData": {"a": "new"}})
    assert created.data == {"a": "bmV3", "keep": "eA=="} and created.string_data is None
    core.patch_namespaced_secret("s", namespace, {"stringData": {"b": "two"}})
    read = core.read_namespaced_secret("s", namespace)
    assert read.data == {"a": "bmV3", "keep": "eA==", "b": "dHdv"} and read.string_data is None
