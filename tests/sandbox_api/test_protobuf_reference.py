"""The codec's CustomResourceDefinition, ControllerRevision and watch-event bytes read with
the official protobuf runtime (messages compiled from `protobuf_bodies/reference.proto`),
and bodies built by the runtime, as a Go client would send them, decoded by the codec."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from grpc_tools import protoc
from tp_sandbox.apiserver import protobuf

BODIES = Path(__file__).parent / "protobuf_bodies"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com", "resourceVersion": "12"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "listKind": "WidgetList", "shortNames": ["wd"]},
        "versions": [
            {"name": "v1", "served": True, "storage": True,
             "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                      "statusReplicasPath": ".status.replicas"}},
             "additionalPrinterColumns": [{"name": "Size", "type": "integer",
                                           "jsonPath": ".spec.size", "priority": 1}],
             "schema": {"openAPIV3Schema": {
                 "type": "object", "required": ["spec"],
                 "x-kubernetes-validations": [{"rule": "self.spec.size >= 0",
                                               "message": "size"}],
                 "properties": {
                     "spec": {"type": "object", "additionalProperties": False,
                              "properties": {
                                  "size": {"type": "integer", "maximum": 10.5, "minimum": 0,
                                           "default": 3},
                                  "color": {"type": "string", "enum": ["red", "blue"],
                                            "maxLength": 8, "nullable": True},
                                  "tags": {"type": "array", "items": {"type": "string"},
                                           "x-kubernetes-list-type": "set"},
                                  "port": {"x-kubernetes-int-or-string": True},
                                  "labels": {"type": "object",
                                             "additionalProperties": {"type": "string"}},
                                  "extra": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True},
                              },
                              "dependencies": {"color": ["size"]}},
                     "status": {"type": "object", "properties": {
                         "replicas": {"type": "integer", "format": "int32"}}},
                 }}}},
            {"name": "v0", "served": False, "storage": False,
             "schema": {"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}}},
        ]},
}


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("reference_pb")
    code = protoc.main(["protoc", f"-I{BODIES}", f"--python_out={out}",
                        str(BODIES / "reference.proto")])
    assert code == 0
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("reference_pb2")
    finally:
        sys.path.remove(str(out))


def unwrap(pb: ModuleType, body: bytes) -> Any:
    assert body.startswith(protobuf.MAGIC)
    unknown = pb.Unknown.FromString(body[len(protobuf.MAGIC):])
    return unknown


def test_a_crd_round_trips_through_the_codec_unchanged() -> None:
    assert protobuf.decode(protobuf.encode(CRD)) == CRD


def test_the_protobuf_runtime_reads_a_crd_the_codec_wrote(pb: ModuleType) -> None:
    unknown = unwrap(pb, protobuf.encode(CRD))
    assert (unknown.typeMeta.apiVersion, unknown.typeMeta.kind) == (
        "apiextensions.k8s.io/v1", "CustomResourceDefinition")
    crd = pb.CustomResourceDefinition.FromString(unknown.raw)
    assert crd.metadata.name == "widgets.example.com"
    assert (crd.spec.group, crd.spec.scope, crd.spec.names.kind, list(
        crd.spec.names.shortNames)) == ("example.com", "Namespaced", "Widget", ["wd"])
    v1, v0 = crd.spec.versions
    assert (v1.served, v1.storage) == (True, True)
    assert v0.HasField("served") and not v0.served  # false is written, as Go does
    assert v1.subresources.HasField("status")
    assert v1.subresources.scale.specReplicasPath == ".spec.replicas"
    assert v1.additionalPrinterColumns[0].priority == 1
    root = v1.schema.openAPIV3Schema
    assert list(root.required) == ["spec"]
    assert root.xKubernetesValidations[0].rule == "self.spec.size >= 0"
    spec = root.properties["spec"]
    assert spec.additionalProperties.HasField("allows")
    assert not spec.additionalProperties.allows and not spec.additionalProperties.HasField(
        "schema")
    size = spec.properties["size"]
    assert (size.maximum, size.minimum) == (10.5, 0.0) and size.HasField("minimum")
    assert json.loads(size.default.raw) == 3
    color = spec.properties["color"]
    assert [json.loads(e.raw) for e in color.enum] == ["red", "blue"]
    assert (color.maxLength, color.nullable) == (8, True)
    tags = spec.properties["tags"]
    assert tags.items.schema.type == "string" and tags.xKubernetesListType == "set"
    assert spec.properties["port"].xKubernetesIntOrString
    labels = spec.properties["labels"].additionalProperties
    assert labels.allows and labels.schema.type == "string"
    assert spec.properties["extra"].xKubernetesPreserveUnknownFields
    assert list(spec.dependencies["color"].property) == ["size"]


def test_a_crd_built_by_the_protobuf_runtime_decodes_to_its_json(pb: ModuleType) -> None:
    crd = pb.CustomResourceDefinition()
    crd.metadata.name = "gizmos.example.com"
    crd.spec.group, crd.spec.scope = "example.com", "Cluster"
    crd.spec.names.plural, crd.spec.names.kind = "gizmos", "Gizmo"
    version = crd.spec.versions.add(name="v1", served=True, storage=True)
    root = version.schema.openAPIV3Schema
    root.type = "object"
    items = root.properties["parts"]
    items.type = "array"
    items.items.jSONSchemas.add(type="string")  # the tuple form of items
    items.items.jSONSchemas.add(type="integer")
    ratio = root.properties["ratio"]
    ratio.type, ratio.maximum = "number", 0.25
    ratio.default.raw = b"0.1"
    root.additionalProperties.allows = True
    unknown = pb.Unknown(typeMeta=pb.TypeMeta(apiVersion="apiextensions.k8s.io/v1",
                                              kind="CustomResourceDefinition"),
                         raw=crd.SerializeToString())
    decoded = protobuf.decode(protobuf.MAGIC + unknown.SerializeToString())
    assert decoded["spec"]["names"] == {"plural": "gizmos", "kind": "Gizmo"}
    assert decoded["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == {
        "type": "object", "additionalProperties": True,
        "properties": {"parts": {"type": "array", "items": [{"type": "string"},
                                                            {"type": "integer"}]},
                       "ratio": {"type": "number", "maximum": 0.25, "default": 0.1}}}


def test_a_controller_revision_carries_its_data_as_raw_json(pb: ModuleType) -> None:
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": "web-5d9f", "namespace": "default"},
                "data": {"spec": {"template": {"$patch": "replace", "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
                "revision": 2}
    body = protobuf.encode(revision)
    read = pb.ControllerRevision.FromString(unwrap(pb, body).raw)
    assert read.revision == 2 and json.loads(read.data.raw) == revision["data"]
    assert protobuf.decode(body) == revision
    # Revision 0 is still written and read (no omitempty on it).
    zero = copy.deepcopy(revision)
    zero["revision"] = 0
    assert protobuf.decode(protobuf.encode(zero))["revision"] == 0


def test_a_watch_frame_is_a_length_prefixed_watch_event_of_the_runtime(
        pb: ModuleType) -> None:
    frame = protobuf.watch_frame("MODIFIED", CRD)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    event = pb.WatchEvent.FromString(frame[4:])
    assert event.type == "MODIFIED"
    crd = pb.CustomResourceDefinition.FromString(unwrap(pb, event.object.raw).raw)
    assert crd.metadata.resourceVersion == "12"
    assert protobuf.watch_events(frame + frame[:7]) == [("MODIFIED", CRD)]  # partial tail
