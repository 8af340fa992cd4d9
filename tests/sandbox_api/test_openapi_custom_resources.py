"""A CustomResourceDefinition's schema is published in `/openapi/v3` (index and
group-version document) and `/openapi/v2`, as upstream's CRD OpenAPI controller does, so
the real kubectl explains custom resources and applies them with merge patches."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver_testing import Server
from kubernetes import client

pytestmark = pytest.mark.timeout(120)

GROUP = "oa.example.com"
NAME = f"gadgets.{GROUP}"
DEFINITION = "com.example.oa.v1.Gadget"


def crd(size_description: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{
                     "name": "v1", "served": True, "storage": True,
                     "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "description": "The gadget's wishes.",
                                  "properties": {
                                      "size": {"type": "integer",
                                               "description": size_description},
                                      "parts": {"type": "array", "items": {
                                          "type": "object",
                                          "properties": {"name": {"type": "string"}}}}}}}}},
                 }]}}


@pytest.fixture
def gadgets(kube: client.ApiClient) -> Iterator[client.ApiextensionsV1Api]:
    ext = client.ApiextensionsV1Api(kube)
    ext.create_custom_resource_definition(crd("How big."))
    yield ext
    ext.delete_custom_resource_definition(NAME)


def get_json(server: Server, path: str) -> Any:
    resp = server.raw("GET", path, headers={"Accept": "application/json"}, timeout=60)
    assert resp.status == 200, resp.data
    return json.loads(resp.data)


def test_the_v3_index_and_document_publish_the_crd_schema(
        server: Server, gadgets: client.ApiextensionsV1Api) -> None:
    url = get_json(server, "/openapi/v3")["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    doc = get_json(server, url)
    schemas = doc["components"]["schemas"]
    gadget = schemas[DEFINITION]
    assert gadget["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "Gadget", "version": "v1"}]
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(gadget["properties"])
    assert gadget["properties"]["spec"]["properties"]["size"]["description"] == "How big."
    assert schemas[DEFINITION + "List"]["properties"]["items"]["items"] == {
        "$ref": f"#/components/schemas/{DEFINITION}"}
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    patch = doc["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/gadgets/{{name}}"]["patch"]
    # No strategic merge for custom resources: kubectl reads this to choose its patch.
    assert set(patch["requestBody"]["content"]) == {
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json"}
    assert f"/apis/{GROUP}/v1/namespaces/{{namespace}}/gadgets/{{name}}/status" in doc["paths"]


def test_a_changed_crd_changes_the_document_and_its_hash_and_a_deleted_one_leaves(
        server: Server, gadgets: client.ApiextensionsV1Api) -> None:
    before = get_json(server, "/openapi/v3")["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    current = gadgets.read_custom_resource_definition(NAME)
    current.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties[
        "size"].description = "How big, now."
    gadgets.replace_custom_resource_definition(NAME, current)
    after = get_json(server, "/openapi/v3")["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    assert after != before
    size = get_json(server, after)["components"]["schemas"][DEFINITION]["properties"][
        "spec"]["properties"]["size"]
    assert size["description"] == "How big, now."
    v2 = get_json(server, "/openapi/v2")
    assert v2["definitions"][DEFINITION]["properties"]["spec"]["properties"]["size"][
        "description"] == "How big, now."
    assert f"/apis/{GROUP}/v1/namespaces/{{namespace}}/gadgets" in v2["paths"]
    gadgets.delete_custom_resource_definition(NAME)
    assert f"apis/{GROUP}/v1" not in get_json(server, "/openapi/v3")["paths"]
    assert DEFINITION not in get_json(server, "/openapi/v2")["definitions"]
    assert server.raw("GET", f"/openapi/v3/apis/{GROUP}/v1").status == 404
    gadgets.create_custom_resource_definition(crd("How big."))  # for the fixture's delete


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_explains_and_applies_a_custom_resource(
        server: Server, gadgets: client.ApiextensionsV1Api, namespace: str,
        tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    base = [kubectl, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(tmp_path),
            "-n", namespace]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return proc

    v3 = run("explain", "gadgets.spec").stdout
    assert "The gadget's wishes." in v3 and "size\t<integer>" in v3
    v2 = run("explain", "gadgets.spec.size", "--output=plaintext-openapiv2").stdout
    assert "KIND:     Gadget" in v2 and "How big." in v2
    manifest = tmp_path / "g.yaml"
    for size in (1, 2):
        manifest.write_text(f"apiVersion: {GROUP}/v1\nkind: Gadget\nmetadata: {{name: g}}\n"
                            f"spec: {{size: {size}, parts: [{{name: a}}]}}\n")
        applied = run("apply", "-f", str(manifest), "-v=8")
    assert "Content-Type: application/merge-patch+json" in applied.stderr
    assert run("get", "gadget", "g", "-o", "jsonpath={.spec.size}").stdout == "2"
