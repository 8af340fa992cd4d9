"""The /openapi/v3 documents carry the real definitions, converted to OpenAPI 3.0."""

from __future__ import annotations

import json

from tp_sandbox.apiserver import openapi, schema

DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"


def test_the_index_names_every_served_group_version_with_a_content_hash() -> None:
    paths = openapi.v3_index()["paths"]
    assert set(paths) >= {"api/v1", "apis/apps/v1", "apis/discovery.k8s.io/v1",
                          "apis/rbac.authorization.k8s.io/v1"}
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={openapi.v3_hash('apps', 'v1')}"


def test_documents_contain_no_json_schema_leftovers() -> None:
    for group, version in (("", "v1"), ("apps", "v1")):
        body = openapi.v3_document_bytes(group, version)
        assert body is not None
        text = body.decode()
        assert "#/$defs/" not in text and '"null"' not in text
        assert json.loads(text)["openapi"] == "3.0.0"


def test_the_apps_document_keeps_the_merge_metadata_of_pod_specs() -> None:
    doc = openapi.v3_document("apps", "v1")
    assert doc is not None
    schemas = doc["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    spec = schemas["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    for name in ("DeleteOptions", "Status", "ObjectMeta", "Patch", "WatchEvent"):
        assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}" in schemas
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"


def test_every_reference_in_a_document_resolves_inside_it() -> None:
    doc = openapi.v3_document("", "v1")
    assert doc is not None
    text = json.dumps(doc)
    refs = {part.split('"', 1)[0] for part in text.split('"#/components/schemas/')[1:]}
    assert refs <= set(doc["components"]["schemas"])


def test_operations_declare_gvk_action_and_field_validation() -> None:
    doc = openapi.v3_document("apps", "v1")
    assert doc is not None
    item = doc["paths"][DEPLOYMENTS + "/{name}"]
    assert item["patch"]["x-kubernetes-action"] == "patch"
    assert item["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "apps", "kind": "Deployment", "version": "v1"}
    assert "fieldValidation" in [p["name"] for p in item["patch"]["parameters"]]
    assert "fieldValidation" in [p["name"] for p in doc["paths"][DEPLOYMENTS]["post"]["parameters"]]
    assert doc["paths"][DEPLOYMENTS]["get"]["x-kubernetes-action"] == "list"
    scale = doc["paths"][DEPLOYMENTS + "/{name}/scale"]["put"]
    assert scale["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    assert "/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}" in doc["paths"]


def test_an_unserved_group_version_has_no_document() -> None:
    assert openapi.v3_document("policy", "v1") is None
    assert openapi.v3_hash("policy", "v1") is None


def test_schema_navigation_follows_refs_and_reads_patch_metadata() -> None:
    top = schema.for_kind("io.k8s.api.core.v1.Pod")
    volumes = schema.prop(schema.prop(top, "spec"), "volumes")
    assert schema.patch_meta(volumes) == (frozenset({"merge", "retainKeys"}), "name")
    assert schema.type_of(schema.prop(schema.items(volumes), "name")) == "string"
    labels = schema.prop(schema.prop(top, "metadata"), "labels")
    assert schema.is_map(labels)
