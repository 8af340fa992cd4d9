"""`/openapi/v2` in protobuf (gnostic's OpenAPI v2 Document), which the real kubectl 1.37
asks for in `kubectl explain --output=plaintext-openapiv2`; read back with the official
protobuf runtime (messages compiled from `protobuf_bodies/openapi_v2_reference.proto`)."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from apiserver_testing import Server
from grpc_tools import protoc

pytestmark = pytest.mark.timeout(120)

BODIES = Path(__file__).parent / "protobuf_bodies"
ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@pytest.fixture(scope="module")
def oa(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("openapi_pb")
    assert protoc.main(["protoc", f"-I{BODIES}", f"--python_out={out}",
                        str(BODIES / "openapi_v2_reference.proto")]) == 0
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("openapi_v2_reference_pb2")
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def document(server: Server, oa: ModuleType) -> Any:
    resp = server.raw("GET", "/openapi/v2", headers={"Accept": ACCEPT}, timeout=60)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == \
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    return oa.Document.FromString(resp.data)


def named(entries: Any) -> dict[str, Any]:
    return {e.name: e.value for e in entries}


def test_the_document_names_swagger_2_and_the_kubernetes_version(document: Any) -> None:
    assert (document.swagger, document.info.title) == ("2.0", "Kubernetes")
    assert document.info.version.startswith("v1.37")
    [requirement] = document.security
    assert list(named(requirement.additional_properties)) == ["BearerToken"]
    bearer = named(document.security_definitions.additional_properties)["BearerToken"]
    assert (bearer.api_key_security.name, getattr(bearer.api_key_security, "in")) \
        == ("authorization", "header")


def test_definitions_carry_types_refs_and_vendor_extensions(document: Any,
                                                            server: Server) -> None:
    definitions = named(document.definitions.additional_properties)
    as_json = json.loads(server.raw("GET", "/openapi/v2", timeout=60).data)["definitions"]
    assert set(definitions) == set(as_json)  # the same document, in the other encoding
    deployment = definitions["io.k8s.api.apps.v1.Deployment"]
    assert list(deployment.type.value) == ["object"]
    extensions = {e.name: yaml.safe_load(e.value.yaml) for e in deployment.vendor_extension}
    assert extensions["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    properties = named(deployment.properties.additional_properties)
    assert properties["spec"]._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    spec = named(definitions["io.k8s.api.apps.v1.DeploymentSpec"].properties
                 .additional_properties)
    assert (list(spec["replicas"].type.value), spec["replicas"].format) == (["integer"],
                                                                            "int32")
    containers = named(definitions["io.k8s.api.core.v1.PodSpec"].properties
                       .additional_properties)["containers"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    list_type = {e.name: yaml.safe_load(e.value.yaml) for e in containers.vendor_extension}
    assert list_type["x-kubernetes-patch-merge-key"] == "name"
    labels = named(definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].properties
                   .additional_properties)["labels"]
    assert list(labels.additional_properties.schema.type.value) == ["string"]
    quantity = definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert list(quantity.type.value) == ["string"]  # as upstream's v2 (no oneOf there)


def test_paths_carry_operations_parameters_and_responses(document: Any) -> None:
    item = named(document.paths.path)["/apis/apps/v1/namespaces/{namespace}/deployments"]
    shared = [p.parameter.non_body_parameter for p in item.parameters]
    assert (shared[0].path_parameter_sub_schema.name,
            shared[0].path_parameter_sub_schema.required) == ("namespace", True)
    assert shared[1].query_parameter_sub_schema.name == "pretty"
    get = item.get
    assert get.operation_id == "listAppsV1NamespacedDeployment"
    assert list(get.schemes) == ["https"]
    queries = {p.parameter.non_body_parameter.query_parameter_sub_schema.name:
               p.parameter.non_body_parameter.query_parameter_sub_schema.type
               for p in get.parameters}
    assert queries["limit"] == "integer" and queries["watch"] == "boolean"
    ok = named(get.responses.response_code)["200"].response
    assert ok.schema.schema._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentList"
    gvk = {e.name: yaml.safe_load(e.value.yaml) for e in get.vendor_extension}
    assert gvk["x-kubernetes-action"] == "list"
    body = item.post.parameters[0].parameter.body_parameter
    assert (body.name, body.required, body.schema._ref) == (
        "body", True, "#/definitions/io.k8s.api.apps.v1.Deployment")


@pytest.mark.parametrize("accept", ["application/json", f"{ACCEPT};q=0, application/json"])
def test_a_json_client_still_gets_the_json_document(server: Server, accept: str) -> None:
    resp = server.raw("GET", "/openapi/v2", headers={"Accept": accept}, timeout=60)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert json.loads(resp.data)["swagger"] == "2.0"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_explain_with_the_openapi_v2_output_reads_the_protobuf_document(
        server: Server, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    base = [kubectl, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(tmp_path)]
    proc = subprocess.run([*base, "explain", "deployments.spec.replicas",
                           "--output=plaintext-openapiv2", "-v=8"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"Accept: {ACCEPT}" in proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    assert lines[:3] == ["KIND:     Deployment", "VERSION:  apps/v1",
                         "FIELD:    replicas <integer>"]
    assert "Number of desired pods." in proc.stdout
    recursive = subprocess.run([*base, "explain", "pods.spec.containers.resources",
                                "--output=plaintext-openapiv2", "--recursive"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    fields = [line.split() for line in recursive.splitlines() if "<" in line]
    assert ["limits", "<map[string]string>"] in fields
    assert ["requests", "<map[string]string>"] in fields
