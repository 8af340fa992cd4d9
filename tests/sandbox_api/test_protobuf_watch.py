"""Protobuf watch streams (`Accept: application/vnd.kubernetes.protobuf`): length-prefixed
`meta.v1.WatchEvent` frames whose objects are whole protobuf bodies (magic +
runtime.Unknown), including BOOKMARK and ERROR events, as kube-apiserver writes them; read
by the real kubectl (`kubectl events -w` watches through its typed, protobuf client)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest
import urllib3
from apiserver_testing import ADMIN_TOKEN, WATCH_HISTORY, Server, wait_for
from kubernetes import client
from tp_sandbox.apiserver import protobuf

pytestmark = pytest.mark.timeout(90)

PROTOBUF_FIRST = "application/vnd.kubernetes.protobuf,application/json"


def open_watch(server: Server, path: str, accept: str = PROTOBUF_FIRST
               ) -> urllib3.BaseHTTPResponse:
    http = urllib3.PoolManager(ca_certs=str(server.ca), cert_reqs="CERT_REQUIRED")
    return http.request("GET", server.url + path, preload_content=False, retries=False,
                        timeout=urllib3.Timeout(connect=5, read=10),
                        headers={"Accept": accept, "Authorization": f"Bearer {ADMIN_TOKEN}"})


def read_frames(resp: urllib3.BaseHTTPResponse, count: int) -> tuple[list[bytes], bytes]:
    """The first `count` raw frames (length prefix included) and all bytes read."""
    data = b""
    frames: list[bytes] = []
    for chunk in resp.stream(1024, decode_content=False):
        data += chunk
        frames, pos = [], 0
        while pos + 4 <= len(data):
            end = pos + 4 + int.from_bytes(data[pos:pos + 4], "big")
            if end > len(data):
                break
            frames.append(data[pos:end])
            pos = end
        if len(frames) >= count:
            break
    resp.release_conn()
    return frames[:count], data


def events(server: Server, path: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    resp = open_watch(server, path)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/vnd.kubernetes.protobuf;stream=watch"
    frames, _ = read_frames(resp, count)
    return protobuf.watch_events(b"".join(frames))


def test_a_protobuf_watch_frames_each_event_as_a_watch_event_around_a_full_body(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "w"},
                                                  "data": {"a": "1"}})
    core.patch_namespaced_config_map("w", namespace, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w", namespace)
    path = (f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={start}"
            "&fieldSelector=metadata.name%3Dw")
    frames, _ = read_frames(open_watch(server, path), 3)
    for frame in frames:
        event = frame[4:]
        assert int.from_bytes(frame[:4], "big") == len(event)
        assert not event.startswith(protobuf.MAGIC)  # the event itself has no envelope
        fields = {n: v for n, _, v in protobuf.fields(event)}
        raw = dict((n, v) for n, _, v in protobuf.fields(fields[2]))[1]  # type: ignore[arg-type]
        assert isinstance(raw, bytes) and raw.startswith(protobuf.MAGIC)
    got = protobuf.watch_events(b"".join(frames))
    assert [t for t, _ in got] == ["ADDED", "MODIFIED", "DELETED"]
    assert [o["data"] for _, o in got] == [{"a": "1"}, {"a": "2"}, {"a": "2"}]
    # The same events as the JSON stream carries, object for object.
    resp = server.raw("GET", path + "&timeoutSeconds=1",
                      headers={"Accept": "application/json"})
    as_json = [json.loads(line) for line in resp.data.splitlines()]
    assert [(e["type"], e["object"]) for e in as_json] == got


def test_bookmarks_carry_the_watched_kind_and_a_resource_version_only(
        server: Server, namespace: str) -> None:
    got = events(server, f"/apis/apps/v1/namespaces/{namespace}/deployments?watch=1"
                         "&allowWatchBookmarks=true&resourceVersion=0", 1)
    [(event_type, obj)] = got
    assert event_type == "BOOKMARK"
    assert (obj["apiVersion"], obj["kind"]) == ("apps/v1", "Deployment")
    assert set(obj["metadata"]) == {"resourceVersion"} and int(obj["metadata"][
        "resourceVersion"]) > 0


def test_initial_events_end_with_the_annotated_bookmark(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s"},
                                              "stringData": {"k": "v"}})
    got = events(server, f"/api/v1/namespaces/{namespace}/secrets?watch=1"
                         "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                         "&allowWatchBookmarks=true", 2)
    assert [t for t, _ in got] == ["ADDED", "BOOKMARK"]
    assert got[0][1]["data"] == {"k": "dg=="}  # bytes on the wire, base64 in JSON
    assert got[1][1]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_a_too_old_resource_version_ends_the_stream_with_an_error_frame(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "churn"}})
    for i in range(WATCH_HISTORY + 10):
        core.patch_namespaced_config_map("churn", namespace, {"data": {"i": str(i)}})
    resp = open_watch(server, f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
                              f"&resourceVersion={old}")
    frames, data = read_frames(resp, 2)
    [(event_type, status)] = protobuf.watch_events(data)
    assert event_type == "ERROR" and len(frames) == 1  # and the stream ends
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert "too old resource version" in status["message"]


def test_tables_and_custom_resources_stay_json_for_a_protobuf_client(
        server: Server, kube: client.ApiClient, namespace: str) -> None:
    table = open_watch(server, f"/api/v1/namespaces/{namespace}/pods?watch=1"
                               "&timeoutSeconds=1",
                       accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert table.headers["Content-Type"] == "application/json"
    table.release_conn()
    ext = client.ApiextensionsV1Api(kube)
    ext.create_custom_resource_definition({
        "metadata": {"name": "pbws.pbw.example.com"},
        "spec": {"group": "pbw.example.com", "scope": "Namespaced",
                 "names": {"plural": "pbws", "singular": "pbw", "kind": "Pbw"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}]}})
    try:
        custom = open_watch(server, f"/apis/pbw.example.com/v1/namespaces/{namespace}/pbws"
                                    "?watch=1&timeoutSeconds=1")
        # Custom resources have no protobuf form upstream either.
        assert custom.headers["Content-Type"] == "application/json"
        custom.release_conn()
    finally:
        ext.delete_custom_resource_definition("pbws.pbw.example.com")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_events_watch_reads_the_protobuf_stream(
        server: Server, core: client.CoreV1Api, namespace: str, tmp_path: Any) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([kubectl, "--kubeconfig", str(server.kubeconfig),
                                 "--cache-dir", str(tmp_path / "cache"), "events", "-w",
                                 "-n", namespace, "-v=8"], stdout=stdout, stderr=stderr)
    try:
        wait_for(lambda: "stream=watch" in err.read_text(), timeout=30,
                 what="kubectl's watch to start")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        core.create_namespaced_event(namespace, {
            "metadata": {"name": "e1"}, "type": "Warning", "reason": "FramedWell",
            "message": "decoded from a protobuf frame", "count": 1,
            "involvedObject": {"kind": "Pod", "name": "p1", "namespace": namespace},
            "firstTimestamp": now, "lastTimestamp": now})
        wait_for(lambda: "decoded from a protobuf frame" in out.read_text(), timeout=30,
                 what="kubectl to print the watched event")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    line = next(x for x in out.read_text().splitlines() if "FramedWell" in x)
    assert line.split()[1:4] == ["Warning", "FramedWell", "Pod/p1"]
    log = err.read_text()
    assert "Accept: application/vnd.kubernetes.protobuf,application/json" in log
    assert "Content-Type: application/vnd.kubernetes.protobuf;stream=watch" in log
    assert "error" not in log.lower().replace("errors", "")
