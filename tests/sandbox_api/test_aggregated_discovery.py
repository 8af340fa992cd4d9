"""Aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`) for `/api` and `/apis`:
negotiated from Accept as kube-apiserver does, with the same content as the legacy
documents, and used by the real kubectl 1.37 without falling back."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from apiserver_testing import Server
from kubernetes import client

pytestmark = [pytest.mark.timeout(120)]

V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = f"{V2},application/json"


def get(server: Server, path: str, accept: str) -> tuple[str, dict[str, Any]]:
    resp = server.raw("GET", path, headers={"Accept": accept})
    assert resp.status == 200, resp.data
    return resp.headers["Content-Type"], json.loads(resp.data)


def legacy_resources(server: Server, group_version: str) -> list[dict[str, Any]]:
    path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    return list(get(server, path, "application/json")[1]["resources"])


def as_legacy(group: str, version: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An aggregated resource entry spelled as the legacy APIResourceList's entries."""
    out = [{"name": entry["resource"], "singularName": entry["singularResource"],
            "namespaced": entry["scope"] == "Namespaced", "kind": entry["responseKind"]["kind"],
            "verbs": entry["verbs"],
            **({"shortNames": entry["shortNames"]} if "shortNames" in entry else {}),
            **({"categories": entry["categories"]} if "categories" in entry else {})}]
    for sub in entry.get("subresources", []):
        kind = sub["responseKind"]
        legacy: dict[str, Any] = {"name": f"{entry['resource']}/{sub['subresource']}",
                                  "singularName": "", "namespaced": out[0]["namespaced"],
                                  "kind": kind["kind"], "verbs": sub["verbs"]}
        if (kind["group"], kind["version"]) != (group, version):
            legacy["group"], legacy["version"] = kind["group"], kind["version"]
        out.append(legacy)
    return out


@pytest.mark.parametrize("accept,version", [(KUBECTL_ACCEPT, "v2"), (V2BETA1, "v2beta1")])
def test_api_and_apis_answer_the_aggregated_list_in_the_negotiated_version(
        server: Server, accept: str, version: str) -> None:
    ctype, core = get(server, "/api", accept)
    assert ctype == f"application/json;g=apidiscovery.k8s.io;v={version};" \
                    "as=APIGroupDiscoveryList"
    assert (core["kind"], core["apiVersion"]) == ("APIGroupDiscoveryList",
                                                  f"apidiscovery.k8s.io/{version}")
    assert [v["version"] for v in core["items"][0]["versions"]] == ["v1"]
    _, groups = get(server, "/apis", accept)
    names = [g["metadata"]["name"] for g in groups["items"]]
    legacy = get(server, "/apis", "application/json")[1]
    assert names == [g["name"] for g in legacy["groups"]]  # same groups, same order
    assert "" not in names  # the core group lives under /api only


def test_every_aggregated_resource_matches_its_legacy_discovery_entry(server: Server) -> None:
    _, core = get(server, "/api", V2)
    _, named = get(server, "/apis", V2)
    checked = 0
    for item in core["items"] + named["items"]:
        group = item["metadata"].get("name", "")
        for version in item["versions"]:
            assert version["freshness"] == "Current"
            gv = f"{group}/{version['version']}" if group else version["version"]
            spelled = [e for r in version["resources"]
                       for e in as_legacy(group, version["version"], r)]
            assert spelled == legacy_resources(server, gv), gv
            checked += len(version["resources"])
    assert checked >= 25


def test_deployments_carry_their_scale_subresource_kind_from_autoscaling(
        server: Server) -> None:
    _, named = get(server, "/apis", V2)
    apps = next(g for g in named["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deploy["scope"] == "Namespaced" and deploy["shortNames"] == ["deploy"]
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}


@pytest.mark.parametrize("accept", [
    "application/json", "application/json, */*", "",
    f"application/json;q=0.9,{V2};q=0.5",
    "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    ",application/json",
])
def test_clients_that_take_plain_json_first_get_the_legacy_documents(
        server: Server, accept: str) -> None:
    ctype, doc = get(server, "/apis", accept)
    assert ctype.startswith("application/json") and "apidiscovery" not in ctype
    assert doc["kind"] == "APIGroupList"
    assert get(server, "/api", accept)[1]["kind"] == "APIVersions"


def test_a_new_custom_resource_definition_shows_in_the_aggregated_list(
        server: Server, kube: client.ApiClient) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.agg.example.com"},
           "spec": {"group": "agg.example.com", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                              "shortNames": ["gdg"]},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {
                                      "type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True}}}]}}
    ext = client.ApiextensionsV1Api(kube)
    ext.create_custom_resource_definition(crd)
    try:
        _, named = get(server, "/apis", V2)
        group = next(g for g in named["items"] if g["metadata"]["name"] == "agg.example.com")
        [resource] = group["versions"][0]["resources"]
        assert (resource["resource"], resource["shortNames"],
                resource["responseKind"]["kind"]) == ("gadgets", ["gdg"], "Gadget")
    finally:  # other tests of this server count the groups
        ext.delete_custom_resource_definition("gadgets.agg.example.com")
    _, named = get(server, "/apis", V2)
    assert "agg.example.com" not in [g["metadata"]["name"] for g in named["items"]]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_uses_the_aggregated_documents_without_asking_each_group(
        server: Server, tmp_path: Any) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    base = [kubectl, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(tmp_path)]
    proc = subprocess.run([*base, "get", "deployments,services", "-A", "-v=8"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    log = proc.stderr
    served = log.count("Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;"
                       "as=APIGroupDiscoveryList")
    assert served == 2, log  # /api and /apis
    # The legacy fallback would fetch /api/v1, /apis/apps/v1, ... one by one.
    assert 'url="' + server.url + '/apis/apps/v1?' not in log
    assert 'url="' + server.url + '/api/v1?' not in log
    assert "kubernetes" in proc.stdout  # the default Service, listed through discovery
    resources = subprocess.run([*base, "api-resources", "-o", "wide"], capture_output=True,
                               text=True, timeout=60, check=True).stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()[1:]}
    assert rows["deployments"][1:5] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["selfsubjectaccessreviews"][1:4] == ["authorization.k8s.io/v1", "false",
                                                      "SelfSubjectAccessReview"]
    assert rows["configmaps"][5] == \
        "create,delete,deletecollection,get,list,patch,update,watch"
