"""Wire details kubectl and other clients rely on: Table output, discovery documents,
error codes for bad requests, the legacy watch path."""

from __future__ import annotations

import json

import pytest
from apiserver_testing import Server
from kubernetes import client

pytestmark = pytest.mark.timeout(60)
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_a_table_request_gets_the_upstream_pod_columns(server: Server, core: client.CoreV1Api,
                                                       namespace: str) -> None:
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    table = json.loads(server.raw("GET", f"/api/v1/namespaces/{namespace}/pods",
                                  headers={"Accept": TABLE}).data)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["p", "0/1", "Pending", "0"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_discovery_lists_kinds_verbs_short_names_and_subresources(server: Server) -> None:
    core = json.loads(server.raw("GET", "/api/v1").data)
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert by_name["pods"]["singularName"] == "pod" and by_name["pods"]["namespaced"]
    assert by_name["pods/log"]["verbs"] == ["get"]
    assert by_name["serviceaccounts/token"]["kind"] == "TokenRequest"
    apps = json.loads(server.raw("GET", "/apis/apps/v1").data)
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    groups = json.loads(server.raw("GET", "/apis").data)
    assert {g["name"] for g in groups["groups"]} == {
        "apps", "batch", "apiextensions.k8s.io", "discovery.k8s.io",
        "rbac.authorization.k8s.io", "authentication.k8s.io", "authorization.k8s.io"}


BAD_REQUESTS = [
    ("DELETE", "/api/v1/namespaces", {}, None, 405, "MethodNotAllowed"),
    ("PATCH", "/api/v1/namespaces/default/serviceaccounts/default",
     {"Content-Type": "application/xml"}, b"<x/>", 415, "UnsupportedMediaType"),
    ("POST", "/api/v1/namespaces/default/configmaps", {"Content-Type": "application/json"},
     b"{not json", 400, "BadRequest"),
    ("GET", "/api/v1/namespaces/default/widgets", {}, None, 404, "NotFound"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda c: f"{c[4]}-{c[5]}")
def test_bad_requests_get_a_status_with_the_right_code(server: Server, case: tuple[
        str, str, dict[str, str], bytes | None, int, str]) -> None:
    method, path, headers, body, code, reason = case
    resp = server.raw(method, path, headers=headers, body=body)
    status = json.loads(resp.data)
    assert (resp.status, status["kind"], status["code"], status["reason"]) == (
        code, "Status", code, reason)


def test_the_legacy_watch_path_streams_events(server: Server, namespace: str) -> None:
    resp = server.raw("GET", f"/api/v1/watch/namespaces/{namespace}/serviceaccounts"
                             "?timeoutSeconds=1")
    events = [json.loads(line) for line in resp.data.splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "default")]
