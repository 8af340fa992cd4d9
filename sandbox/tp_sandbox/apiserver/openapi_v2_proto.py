"""`/openapi/v2` as protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`):
the Swagger 2.0 document of `openapi_v2` written as gnostic's `openapi.v2.Document`, which
is what kubectl asks for (`kubectl explain --output=plaintext-openapiv2`) and older clients
read instead of `/openapi/v3`.

gnostic's messages are proto3 (zero values are not written). Field numbers, by message:

    Document       swagger=1 info=2 host=3 basePath=4 schemes=5 consumes=6 produces=7
                   paths=8 definitions=9 security=12 securityDefinitions=13 tags=14 x-=16
    Info           title=1 version=2 description=3
    Paths          x-=1 path=2 (NamedPathItem name=1 value=2)
    PathItem       $ref=1 get=2 put=3 post=4 delete=5 options=6 head=7 patch=8
                   parameters=9 x-=10
    Operation      tags=1 summary=2 description=3 operationId=5 produces=6 consumes=7
                   parameters=8 responses=9 schemes=10 deprecated=11 x-=13
    ParametersItem parameter=1 (Parameter body=1 | nonBody=2) | jsonReference=2
    NonBodyParameter  header=1 formData=2 query=3 path=4 (sub-schemas below)
    Responses      responseCode=1 (NamedResponseValue name=1 value=2: response=1) x-=2
    Response       description=1 schema=2 (SchemaItem schema=1)
    Schema         see _SCHEMA; additionalProperties: schema=1 | boolean=2; type and items
                   are wrappers (TypeItem value=1, ItemsItem schema=1, both repeated)
    Named*         name=1 value=2;  Any: yaml=2 (the value as YAML, as gnostic keeps it)
    x-             vendor extensions: repeated NamedAny
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from typing import Any

import yaml

MEDIA_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
# The answer names the second spelling: `@` is not allowed in a media type's subtype, and
# Go's mime parser (client-go reads every answer's Content-Type) rejects the first.
RESPONSE_MEDIA_TYPE = MEDIA_TYPES[1]
Doc = dict[str, Any]

# Tables map a JSON key to (number, kind): "s" string, "b" bool, "i" int64, "d" double,
# "S" repeated string, "any"/"anys" an Any/repeated Any, or a callable for a message.


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _any(value: Any) -> bytes:
    return _len(2, yaml.safe_dump(value, default_flow_style=False).encode())


def _scalar(number: int, kind: str, value: Any) -> bytes:
    if kind == "s":
        return _len(number, str(value).encode()) if value else b""
    if kind == "b":
        return _varint(number << 3) + b"\x01" if value else b""
    if kind == "i":
        return _varint(number << 3) + _varint(int(value)) if value else b""
    if kind == "d":
        return _varint(number << 3 | 1) + struct.pack("<d", float(value)) if value else b""
    if kind == "S":
        return b"".join(_len(number, str(v).encode()) for v in value)
    if kind == "any":
        return _len(number, _any(value))
    return b"".join(_len(number, _any(v)) for v in value)  # anys


def _extensions(number: int, obj: Doc) -> bytes:
    return b"".join(_len(number, _len(1, k.encode()) + _len(2, _any(v)))
                    for k, v in obj.items() if k.startswith("x-"))


def _fields(obj: Doc, table: dict[str, tuple[int, Any]], ext: int) -> bytes:
    out = bytearray()
    for key, (number, kind) in table.items():
        if key not in obj or obj[key] is None:
            continue
        value = obj[key]
        if isinstance(kind, str):
            out += _scalar(number, kind, value)
        else:
            out += kind(number, value)
    if ext:
        out += _extensions(ext, obj)
    return bytes(out)


def _named(number: int, items: dict[str, Any], value: Any) -> bytes:
    return b"".join(_len(number, _len(1, k.encode()) + _len(2, value(v)))
                    for k, v in items.items())


# ---------------------------------------------------------------- schemas

def _schema(s: Doc) -> bytes:
    return _fields(s, _SCHEMA, 31)


def _schema_field(number: int, s: Doc) -> bytes:
    return _len(number, _schema(s))


def _additional(number: int, value: Any) -> bytes:
    if isinstance(value, bool):
        return _len(number, _varint(2 << 3) + _varint(int(value)))
    return _len(number, _len(1, _schema(value)))


def _type(number: int, value: Any) -> bytes:
    names = value if isinstance(value, list) else [value]
    return _len(number, b"".join(_len(1, str(v).encode()) for v in names))


def _items(number: int, value: Any) -> bytes:
    schemas = value if isinstance(value, list) else [value]
    return _len(number, b"".join(_len(1, _schema(v)) for v in schemas))


def _all_of(number: int, value: list[Doc]) -> bytes:
    return b"".join(_len(number, _schema(v)) for v in value)


def _properties(number: int, value: Doc) -> bytes:
    return _len(number, _named(1, value, _schema))


_SCHEMA: dict[str, tuple[int, Any]] = {
    "$ref": (1, "s"), "format": (2, "s"), "title": (3, "s"), "description": (4, "s"),
    "default": (5, "any"), "multipleOf": (6, "d"), "maximum": (7, "d"),
    "exclusiveMaximum": (8, "b"), "minimum": (9, "d"), "exclusiveMinimum": (10, "b"),
    "maxLength": (11, "i"), "minLength": (12, "i"), "pattern": (13, "s"),
    "maxItems": (14, "i"), "minItems": (15, "i"), "uniqueItems": (16, "b"),
    "maxProperties": (17, "i"), "minProperties": (18, "i"), "required": (19, "S"),
    "enum": (20, "anys"), "additionalProperties": (21, _additional), "type": (22, _type),
    "items": (23, _items), "allOf": (24, _all_of), "properties": (25, _properties),
    "discriminator": (26, "s"), "readOnly": (27, "b"), "example": (30, "any"),
}

# ---------------------------------------------------------------- paths

# Non-body parameter sub-schemas: the common fields, numbered from each message's `type`.
_SUB = {"header": (1, 5), "formData": (2, 6), "query": (3, 6), "path": (4, 5)}
_SUB_TAIL = ("type", "format", "items", "collectionFormat", "default", "maximum",
             "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
             "pattern", "maxItems", "minItems", "uniqueItems", "enum", "multipleOf")
_SUB_KINDS = {"type": "s", "format": "s", "items": None, "collectionFormat": "s",
              "default": "any", "maximum": "d", "exclusiveMaximum": "b", "minimum": "d",
              "exclusiveMinimum": "b", "maxLength": "i", "minLength": "i", "pattern": "s",
              "maxItems": "i", "minItems": "i", "uniqueItems": "b", "enum": "anys",
              "multipleOf": "d"}


def _parameter(p: Doc) -> bytes:
    if "$ref" in p and "in" not in p:
        return _len(2, _fields(p, {"$ref": (1, "s"), "description": (2, "s")}, 0))
    if p.get("in") == "body":
        body = _fields(p, {"description": (1, "s"), "name": (2, "s"), "in": (3, "s"),
                           "required": (4, "b"), "schema": (5, _schema_field)}, 6)
        return _len(1, _len(1, body))
    where = str(p.get("in"))
    oneof, first = _SUB.get(where, _SUB["query"])
    table: dict[str, tuple[int, Any]] = {"required": (1, "b"), "in": (2, "s"),
                                         "description": (3, "s"), "name": (4, "s")}
    if where in ("query", "formData"):
        table["allowEmptyValue"] = (5, "b")
    for offset, key in enumerate(_SUB_TAIL):
        kind = _SUB_KINDS[key]
        if kind is not None:  # `items` (PrimitivesItems) is never used by the API
            table[key] = (first + offset, kind)
    sub = _fields(p, table, first + len(_SUB_TAIL))
    return _len(1, _len(2, _len(oneof, sub)))


def _parameters(number: int, value: list[Doc]) -> bytes:
    return b"".join(_len(number, _parameter(p)) for p in value)


def _response(r: Doc) -> bytes:
    out = _scalar(1, "s", r.get("description", ""))
    if isinstance(r.get("schema"), dict):
        out += _len(2, _len(1, _schema(r["schema"])))
    return _len(1, out + _extensions(5, r))


def _responses(number: int, value: Doc) -> bytes:
    return _len(number, _named(1, value, _response))


_OPERATION: dict[str, tuple[int, Any]] = {
    "tags": (1, "S"), "summary": (2, "s"), "description": (3, "s"), "operationId": (5, "s"),
    "produces": (6, "S"), "consumes": (7, "S"), "parameters": (8, _parameters),
    "responses": (9, _responses), "schemes": (10, "S"), "deprecated": (11, "b"),
}
_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: Doc) -> bytes:
    out = bytearray(_scalar(1, "s", item.get("$ref", "")))
    for method, number in _METHODS.items():
        if isinstance(item.get(method), dict):
            out += _len(number, _fields(item[method], _OPERATION, 13))
    out += _parameters(9, item.get("parameters") or [])
    return bytes(out) + _extensions(10, item)


# ---------------------------------------------------------------- document

def _security_definition(d: Doc) -> bytes:
    if d.get("type") == "apiKey":
        return _len(2, _fields(d, {"type": (1, "s"), "name": (2, "s"), "in": (3, "s"),
                                   "description": (4, "s")}, 5))
    return _len(1, _fields(d, {"type": (1, "s"), "description": (2, "s")}, 3))


def _security(number: int, value: list[Doc]) -> bytes:
    return b"".join(_len(number, _named(1, req, lambda scopes: b"".join(
        _len(1, str(s).encode()) for s in scopes))) for req in value)


_DOCUMENT: dict[str, tuple[int, Any]] = {
    "swagger": (1, "s"),
    "info": (2, lambda n, v: _len(n, _fields(v, {"title": (1, "s"), "version": (2, "s"),
                                                 "description": (3, "s")}, 7))),
    "host": (3, "s"), "basePath": (4, "s"), "schemes": (5, "S"), "consumes": (6, "S"),
    "produces": (7, "S"),
    "paths": (8, lambda n, v: _len(n, _named(2, v, _path_item))),
    "definitions": (9, lambda n, v: _len(n, _named(1, v, _schema))),
    "security": (12, _security),
    "securityDefinitions": (13, lambda n, v: _len(n, _named(1, v, _security_definition))),
}


def encode(doc: Doc) -> bytes:
    """The gnostic `openapi.v2.Document` of a Swagger 2.0 document."""
    return _fields(doc, _DOCUMENT, 16)


@lru_cache(maxsize=2)
def document_bytes(swagger_json: bytes) -> bytes:
    """The protobuf form of the serialised JSON document (cached per document)."""
    return encode(json.loads(swagger_json))


def wants_protobuf(accept: str) -> bool:
    """The client's Accept names the gnostic protobuf form (kubectl sends only that)."""
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if media.lower() not in MEDIA_TYPES:
            continue
        q = next((p.partition("=")[2] for p in params if p.startswith("q=")), "1")
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False
