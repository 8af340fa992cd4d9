"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl's typed commands (`create namespace|deployment|configmap|token`, `auth can-i`,
...) send protobuf; real API servers accept it, so this decodes it into the JSON-shaped
dict the rest of the server works with. Answers stay JSON (clients accept both).

Wire: the magic `k8s\\0`, then a `runtime.Unknown` whose `raw` is the object encoded
with the upstream `generated.proto` schemas, vendored under `k8sproto/` and compiled
into `k8s_descriptors_pb2.py` by `python -m tp_sandbox.apiserver.protobuf --generate`
(a test checks it is current).

Go's encoder writes non-pointer fields even when empty; empty strings and the zero
time are dropped (JSON would omit them), other zero scalars are kept because a pointer
field's explicit 0/false is meaningful and the wire cannot tell the two apart.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, descriptor_pool, message, message_factory
from google.protobuf import descriptor_pb2

from tp_sandbox.apiserver import errors

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
PROTO_ROOT = Path(__file__).parent / "k8sproto"
GENERATED = Path(__file__).parent / "k8s_descriptors_pb2.py"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_ZERO_TIME = -62135596800  # Go's time.Time{} in Unix seconds
_PACKAGES = {"": "core", "apps": "apps", "discovery.k8s.io": "discovery",
             "rbac.authorization.k8s.io": "rbac", "authentication.k8s.io": "authentication",
             "authorization.k8s.io": "authorization", "autoscaling": "autoscaling",
             "policy": "policy"}
_META_KINDS = {"DeleteOptions", "Status", "ListOptions"}


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    from tp_sandbox.apiserver import k8s_descriptors_pb2

    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(k8s_descriptors_pb2.DESCRIPTOR_SET
                                                         ).file:
        pool.Add(f)
    return pool


def _message(full_name: str) -> message.Message:
    try:
        desc = _pool().FindMessageTypeByName(full_name)
    except KeyError:
        raise errors.UnsupportedMediaType(
            f"protobuf bodies of {full_name} are not supported: send application/json"
        ) from None
    return message_factory.GetMessageClass(desc)()


def _type_name(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    if kind in _META_KINDS:
        return f"{_META}.{kind}"
    package = _PACKAGES.get(group)
    if package is None:
        raise errors.UnsupportedMediaType(
            f"protobuf bodies of {api_version} {kind} are not supported: send "
            "application/json")
    return f"k8s.io.api.{package}.{version}.{kind}"


def _time(msg: Any) -> str | None:
    if msg.seconds == _ZERO_TIME or (msg.seconds == 0 and msg.nanos == 0):
        return None
    t = datetime.datetime.fromtimestamp(msg.seconds, datetime.UTC)
    if msg.nanos:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{msg.nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(name: str, msg: Any) -> tuple[bool, Any]:
    """Types whose JSON form is not their message shape."""
    if name in (f"{_META}.Time", f"{_META}.MicroTime"):
        return True, _time(msg)
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, msg.string
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return True, msg.strVal if msg.type == 1 else msg.intVal
    if name in ("k8s.io.apimachinery.pkg.runtime.RawExtension", f"{_META}.FieldsV1"):
        return True, json.loads(msg.raw) if msg.raw else None
    if name == f"{_META}.Duration":
        return True, f"{msg.duration / 1e9:g}s"
    return False, None


def _value(fd: descriptor.FieldDescriptor, value: Any) -> Any:
    if fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
        done, out = _special(fd.message_type.full_name, value)
        return out if done else to_dict(value)
    if fd.type == descriptor.FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def to_dict(msg: message.Message) -> dict[str, Any]:
    """The JSON form of a decoded Kubernetes message (field names are the JSON names)."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            converted: Any = {k: _value(vfd, v) for k, v in value.items()}
        elif fd.label == descriptor.FieldDescriptor.LABEL_REPEATED:
            converted = [_value(fd, v) for v in value]
        else:
            converted = _value(fd, value)
        if converted is None or converted in ("", [], {}) and not isinstance(converted, dict):
            continue
        if converted == {} and fd.message_type is None:
            continue  # an empty map
        out[fd.name] = converted
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the object's JSON-shaped dict."""
    if not body.startswith(MAGIC):
        raise errors.BadRequest("protobuf body without the k8s\\0 prefix: send the object "
                                "as application/json")
    unknown = _message("k8s.io.apimachinery.pkg.runtime.Unknown")
    try:
        unknown.ParseFromString(body[len(MAGIC):])
        type_meta = unknown.typeMeta  # type: ignore[attr-defined]
        obj = _message(_type_name(type_meta.apiVersion, type_meta.kind))
        obj.ParseFromString(unknown.raw)  # type: ignore[attr-defined]
    except message.DecodeError as exc:
        raise errors.BadRequest(f"the protobuf body does not decode: {exc}") from exc
    out = {"apiVersion": type_meta.apiVersion, "kind": type_meta.kind, **to_dict(obj)}
    md = out.get("metadata")
    if isinstance(md, dict) and md.get("generation") == 0:
        del md["generation"]  # never meaningful in a request, and omitempty upstream
    return out


def generate() -> bytes:
    """Compile the vendored .proto files into the generated module's text."""
    import tempfile

    from grpc_tools import protoc

    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "k8s.pb"
        rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--descriptor_set_out={out}",
                          "--include_imports", *files])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {PROTO_ROOT}")
        data = base64.b64encode(out.read_bytes()).decode()
    lines = [data[i:i + 96] for i in range(0, len(data), 96)]
    body = "\n".join(f'    "{line}"' for line in lines)
    return (
        "# Generated by `python -m tp_sandbox.apiserver.protobuf --generate` from the\n"
        "# vendored k8sproto/ schemas: do not edit.\n"
        '"""Serialized FileDescriptorSet of the Kubernetes API types."""\n\n'
        "import base64\n\n"
        f"DESCRIPTOR_SET: bytes = base64.b64decode(\n{body}\n)\n"
    ).encode()


if __name__ == "__main__":
    if sys.argv[1:] != ["--generate"]:
        sys.exit("usage: python -m tp_sandbox.apiserver.protobuf --generate")
    GENERATED.write_bytes(generate())
    print(f"wrote {GENERATED}")
