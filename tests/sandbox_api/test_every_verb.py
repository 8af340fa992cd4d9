"""Every verb of every resource in resources.py, through the official client's
dynamic client (which also exercises discovery)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException
from tp_sandbox.apiserver.resources import RESOURCES, ResourceType

POD_TEMPLATE = {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def sample(rt: ResourceType, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind,
                            "metadata": {"name": name, "labels": {"test": "every-verb"}}}
    extra: dict[str, dict[str, Any]] = {
        "Pod": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        "Service": {"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}},
        "Endpoints": {"subsets": [{"addresses": [{"ip": "10.244.0.9"}],
                                   "ports": [{"port": 80}]}]},
        "ConfigMap": {"data": {"a": "b"}},
        "Secret": {"data": {"a": base64.b64encode(b"b").decode()}},
        "Node": {"spec": {"podCIDR": "10.244.9.0/24"}},
        "Event": {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                  "reason": "Test", "message": "hello", "type": "Normal"},
        "Deployment": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                                "template": POD_TEMPLATE}},
        "ReplicaSet": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                                "template": POD_TEMPLATE}},
        "StatefulSet": {"spec": {"replicas": 0, "serviceName": "x",
                                 "selector": {"matchLabels": {"app": "x"}},
                                 "template": POD_TEMPLATE}},
        "DaemonSet": {"spec": {"selector": {"matchLabels": {"app": "x"}},
                               "template": {**POD_TEMPLATE, "spec": {
                                   **POD_TEMPLATE["spec"], "nodeSelector": {"none": "x"}}}}},
        "ControllerRevision": {"revision": 1, "data": {}},
        "Job": {"spec": {"suspend": True, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
        "CronJob": {"spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox"}]}}}}}},
        "EndpointSlice": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.9"]}],
                          "ports": [{"port": 80, "protocol": "TCP"}]},
        "Role": {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        "ClusterRole": {"rules": [{"apiGroups": [""], "resources": ["pods"],
                                   "verbs": ["get"]}]},
        "RoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                    "name": "r"},
                        "subjects": [{"kind": "User", "name": "u",
                                      "apiGroup": "rbac.authorization.k8s.io"}]},
        "ClusterRoleBinding": {"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                           "kind": "ClusterRole", "name": "r"},
                               "subjects": [{"kind": "User", "name": "u",
                                             "apiGroup": "rbac.authorization.k8s.io"}]},
    }
    if rt.kind == "CustomResourceDefinition":  # named <plural>.<group>
        plural, _, group = name.partition(".")
        extra[rt.kind] = {"spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "EveryVerb",
                      "listKind": "EveryVerbList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}]}}
    body.update(extra.get(rt.kind, {}))
    return body


def object_name(rt: ResourceType, base: str) -> str:
    """A valid name of `rt` from `base` (CRDs are named `<plural>.<group>`)."""
    if rt.kind == "CustomResourceDefinition":
        return f"{base.replace('-', '')}s.everyverb.test"
    return base


@pytest.fixture(scope="module")
def dyn(kube: client.ApiClient) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(kube)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rt", RESOURCES, ids=lambda r: f"{r.group or 'core'}.{r.plural}")
def test_every_verb_works_on_the_resource(rt: ResourceType, dyn: dynamic.DynamicClient,
                                          namespace: str) -> None:
    api = dyn.resources.get(api_version=rt.api_version, kind=rt.kind)
    ns = namespace if rt.namespaced else None
    name = object_name(rt, f"ev-{namespace}" if not rt.namespaced else "ev-one")

    created = api.create(body=sample(rt, name), namespace=ns)
    assert created.metadata.uid and created.metadata.resourceVersion

    got = api.get(name=name, namespace=ns)
    assert got.metadata.uid == created.metadata.uid

    listed = api.get(namespace=ns, label_selector="test=every-verb")
    assert name in [i.metadata.name for i in listed.items]
    assert int(listed.metadata.resourceVersion) >= int(created.metadata.resourceVersion)

    events = list(api.watch(namespace=ns, field_selector=f"metadata.name={name}",
                            timeout=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", name)]

    body = got.to_dict()
    body["metadata"]["labels"]["replaced"] = "yes"
    replaced = api.replace(body=body, name=name, namespace=ns)
    assert replaced.metadata.labels["replaced"] == "yes"
    assert int(replaced.metadata.resourceVersion) > int(got.metadata.resourceVersion)

    patched = api.patch(body={"metadata": {"annotations": {"patched": "yes"}}}, name=name,
                        namespace=ns, content_type="application/merge-patch+json")
    assert patched.metadata.annotations["patched"] == "yes"

    api.delete(name=name, namespace=ns)
    if rt.kind == "Namespace":
        # Namespaces wait for the namespace controller; finalize them by hand here.
        ns_obj = api.get(name=name)
        assert ns_obj.status.phase == "Terminating"
        core = client.CoreV1Api(dyn.client)
        core.replace_namespace_finalize(name, {"metadata": {"name": name},
                                               "spec": {"finalizers": []}})
    with pytest.raises(ApiException) as err:
        api.get(name=name, namespace=ns)
    assert err.value.status == 404

    if "deletecollection" in rt.verbs:
        for i in range(3):
            base = f"ev-{namespace}" if not rt.namespaced else "ev-one"
            api.create(body=sample(rt, object_name(rt, f"{base}-{i}")), namespace=ns)
        api.delete(namespace=ns, label_selector="test=every-verb")
        assert [i.metadata.name for i in api.get(namespace=ns,
                                                 label_selector="test=every-verb").items] == []
