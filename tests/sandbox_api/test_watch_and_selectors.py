"""list/watch: event order, resume from a resourceVersion, 410 Expired, bookmarks,
label and field selectors."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from apiserver_testing import WATCH_HISTORY, Server
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(60)


def collect(stream: Any, n: int) -> list[tuple[str, str]]:
    out = []
    for ev in stream:
        out.append((ev["type"], ev["object"].metadata.name))
        if len(out) == n:
            break
    return out


def test_a_watch_sees_added_modified_deleted_in_order(core: client.CoreV1Api,
                                                      namespace: str) -> None:
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    w = watch.Watch()
    got: list[tuple[str, str]] = []

    def run() -> None:
        got.extend(collect(w.stream(core.list_namespaced_config_map, namespace,
                                    resource_version=start, timeout_seconds=20), 4))

    t = threading.Thread(target=run, name="watch-reader")
    t.start()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", namespace, {"data": {"k": "v"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    core.delete_namespaced_config_map("a", namespace)
    t.join(timeout=30)
    w.stop()
    assert got == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_a_watch_resumes_from_a_resource_version(core: client.CoreV1Api,
                                                 namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    mid = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    core.delete_namespaced_config_map("b", namespace)
    events = collect(watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                          resource_version=mid, timeout_seconds=2), 2)
    assert events == [("ADDED", "b"), ("DELETED", "b")]


def test_a_watch_without_resource_version_starts_with_the_current_objects(
        core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                       timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "a"), ("ADDED", "kube-root-ca.crt")]


def test_a_watch_from_a_too_old_resource_version_is_410_expired(
        core: client.CoreV1Api, namespace: str) -> None:
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "churn"}})
    for i in range(WATCH_HISTORY + 10):
        core.patch_namespaced_config_map("churn", namespace, {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                  resource_version=old, timeout_seconds=2))
    assert err.value.status == 410
    assert "too old resource version" in str(err.value.reason)


def test_a_selector_crossing_turns_into_added_and_deleted(core: client.CoreV1Api,
                                                          namespace: str) -> None:
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a",
                                                               "labels": {"on": "no"}}})
    core.patch_namespaced_config_map("a", namespace, {"metadata": {"labels": {"on": "yes"}}})
    core.patch_namespaced_config_map("a", namespace, {"metadata": {"labels": {"on": "no"}}})
    events = collect(watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                          label_selector="on=yes", resource_version=start,
                                          timeout_seconds=2), 2)
    assert events == [("ADDED", "a"), ("DELETED", "a")]


def test_watch_bookmarks_carry_the_current_resource_version(server: Server,
                                                            namespace: str) -> None:
    rv = json.loads(server.raw("GET", f"/api/v1/namespaces/{namespace}/configmaps").data)[
        "metadata"]["resourceVersion"]
    resp = server.raw("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true"
                             f"&allowWatchBookmarks=true&resourceVersion={rv}"
                             "&timeoutSeconds=3")
    lines = [json.loads(line) for line in resp.data.splitlines() if line.strip()]
    bookmarks = [e for e in lines if e["type"] == "BOOKMARK"]
    assert bookmarks and int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_send_initial_events_ends_with_an_initial_events_end_bookmark(
        server: Server, namespace: str) -> None:
    resp = server.raw("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts?watch=true"
                             "&sendInitialEvents=true&allowWatchBookmarks=true"
                             "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    lines = [json.loads(line) for line in resp.data.splitlines() if line.strip()]
    assert [e["type"] for e in lines[:2]] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}


@pytest.mark.parametrize(("selector", "expected"), [
    ("tier=web", ["w1", "w2"]),
    ("tier==web", ["w1", "w2"]),
    ("tier!=web", ["d1", "n1"]),
    ("tier in (web,db)", ["d1", "w1", "w2"]),
    ("tier notin (web,db)", ["n1"]),
    ("tier", ["d1", "w1", "w2"]),
    ("!tier", ["n1"]),
    ("tier=web,env=prod", ["w1"]),
])
def test_label_selectors_filter_lists(core: client.CoreV1Api, namespace: str, selector: str,
                                      expected: list[str]) -> None:
    for name, labels in (("w1", {"tier": "web", "env": "prod"}), ("w2", {"tier": "web"}),
                         ("d1", {"tier": "db"}), ("n1", {"other": "x"})):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name,
                                                                   "labels": labels}})
    got = core.list_namespaced_config_map(namespace, label_selector=selector).items
    assert sorted(i.metadata.name for i in got if i.metadata.name != "kube-root-ca.crt") \
        == expected


def test_field_selectors_filter_by_the_fields_each_kind_supports(core: client.CoreV1Api,
                                                                 namespace: str) -> None:
    for name, node in (("p1", "n1"), ("p2", "n2")):
        core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": {
            "nodeName": node, "serviceAccountName": "default",
            "containers": [{"name": "c", "image": "busybox"}]}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s"},
                                              "type": "kubernetes.io/tls",
                                              "data": {"tls.crt": "", "tls.key": ""}})
    core.create_namespaced_event(namespace, {
        "metadata": {"name": "e"}, "reason": "R", "message": "m",
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": namespace}})

    def names(items: list[Any]) -> list[str]:
        return sorted(i.metadata.name for i in items)

    assert names(core.list_namespaced_pod(namespace, field_selector="spec.nodeName=n2").items) \
        == ["p2"]
    assert names(core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={namespace},spec.nodeName!=n2").items) == ["p1"]
    assert names(core.list_namespaced_pod(namespace, field_selector="status.phase=Pending"
                                          ).items) == ["p1", "p2"]
    assert names(core.list_namespaced_pod(
        namespace, field_selector="spec.serviceAccountName=default").items) == ["p1", "p2"]
    assert names(core.list_namespaced_secret(namespace, field_selector="type=kubernetes.io/tls"
                                             ).items) == ["s"]
    assert names(core.list_namespaced_event(
        namespace, field_selector="involvedObject.kind=Pod,involvedObject.name=p1").items) \
        == ["e"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(namespace, field_selector="spec.bogus=x")
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == "field label not supported: spec.bogus"


def test_an_all_namespaces_list_spans_namespaces(core: client.CoreV1Api,
                                                 server: Server) -> None:
    names = {(i.metadata.namespace, i.metadata.name)
             for i in core.list_service_account_for_all_namespaces().items}
    assert {("default", "default"), ("kube-system", "default")} <= names
