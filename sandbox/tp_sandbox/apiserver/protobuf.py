"""`application/vnd.kubernetes.protobuf` bodies: decode requests, encode responses.

A body is the magic `k8s\\x00` followed by a `runtime.Unknown` message:

    Unknown  { typeMeta=1 TypeMeta{apiVersion=1, kind=2}, raw=2 bytes,
               contentEncoding=3 string, contentType=4 string }

where `raw` is the object's own message. Field numbers come from `wire_fields`; each
field's wire type from the Kubernetes OpenAPI schema (`schema`), with the few types whose
JSON and protobuf forms differ handled here: Time/MicroTime (seconds, nanos), Quantity
(string=1), IntOrString (type=1 intVal=2 strVal=3), FieldsV1 (raw JSON=1), byte strings
(base64 in JSON), doubles (fixed64), maps (repeated key=1/value=2 entries),
`map<string, []string>` values (a message whose field 1 repeats), and the types whose JSON
is free-form: RawExtension and apiextensions JSON (raw JSON=1), and the JSONSchemaProps
unions (OrArray: schema=1 | jSONSchemas=2; OrBool: allows=1 schema=2; OrStringArray:
schema=1 | property=2). Objects are the sandbox's JSON dicts, so the codec sits
between the wire and the handlers and nothing else changes.

    decode(body) -> dict          a request body; BadRequest if it is not a valid message
    encode(obj) -> bytes          raises NotEncodable for a kind or field it has no
                                  number for: the caller then answers JSON, as a real server
                                  does for types without a protobuf form
    prefers_protobuf(accept)      the client's Accept puts protobuf first
    watch_frame(type, obj) -> bytes   one event of a `;stream=watch` protobuf watch
    watch_events(stream) -> list      the events of such a stream (for clients and tests)
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from tp_sandbox.apiserver import errors, schema
from tp_sandbox.apiserver.resources import RESOURCES, by_kind
from tp_sandbox.apiserver.wire_fields import (
    ALWAYS,
    APIEXT,
    AUTHN,
    AUTHZ,
    AUTOSCALING,
    CORE,
    FIELDS,
    META,
    POLICY,
    RUNTIME,
)

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_MEDIA_TYPE = MEDIA_TYPE + ";stream=watch"
MAGIC = b"k8s\x00"

_TIME = (META + "Time", META + "MicroTime")
_FIELDS_V1 = META + "FieldsV1"
_RAW_JSON = (RUNTIME + "RawExtension", APIEXT + "JSON")
_PROPS = APIEXT + "JSONSchemaProps"
_OR_ARRAY, _OR_BOOL, _OR_STRINGS = (APIEXT + "JSONSchemaPropsOrArray",
                                    APIEXT + "JSONSchemaPropsOrBool",
                                    APIEXT + "JSONSchemaPropsOrStringArray")
_FREE_FORM = (*_RAW_JSON, _OR_ARRAY, _OR_BOOL, _OR_STRINGS)
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
Obj = dict[str, Any]

# Kinds served outside the resource table (reviews, Status, options).
_EXTRA_KINDS = {
    ("v1", "Status"): META + "Status",
    ("v1", "DeleteOptions"): META + "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): META + "DeleteOptions",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): AUTHZ + "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): AUTHZ + "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): AUTHZ + "LocalSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): AUTHZ + "SelfSubjectRulesReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): AUTHN + "SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenReview"): AUTHN + "TokenReview",
    ("authentication.k8s.io/v1", "TokenRequest"): AUTHN + "TokenRequest",
    ("policy/v1", "Eviction"): POLICY + "Eviction",
    ("autoscaling/v1", "Scale"): AUTOSCALING + "Scale",
    ("v1", "Binding"): CORE + "Binding",
}


class NotEncodable(Exception):
    """The object has a kind or field without a protobuf field number here."""


def prefers_protobuf(accept: str) -> bool:
    """True when protobuf is the client's first choice, by `q` and then by order
    (kubectl's typed clients send `application/vnd.kubernetes.protobuf,application/json`);
    `as=Table` and other conversions are JSON."""
    best, best_q = "", -1.0
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif name == "as":
                media = f"{media};as"
        if q > best_q:
            best, best_q = media.lower(), q
    return best == MEDIA_TYPE and best_q > 0


def definition_of(api_version: str, kind: str) -> str | None:
    """The OpenAPI definition of an apiVersion/kind the codec knows, else None."""
    extra = _EXTRA_KINDS.get((api_version, kind))
    if extra:
        return extra
    item_kind = kind.removesuffix("List") if kind.endswith("List") else None
    rt = by_kind(api_version, item_kind or kind)
    if rt is None:
        return None
    name = rt.definition_name + ("List" if item_kind else "")
    return name if name in FIELDS or (item_kind and rt.definition_name in FIELDS) else None


# ---------------------------------------------------------------- field tables

@dataclass(frozen=True)
class Field:
    number: int
    name: str  # JSON property; "" for an inline embedded message
    pointer: bool = False  # or shown even when zero: the decoder keeps a zero value
    inline: str = ""  # definition name of an embedded (`json:",inline"`) message


@dataclass(frozen=True)
class Message:
    name: str
    by_number: dict[int, Field]
    by_name: dict[str, Field]  # JSON name -> field (inline members map to their parent)
    is_list: bool = False


@cache
def message(name: str) -> Message:
    """The parsed table entry of a definition (lists are synthesised)."""
    if name not in FIELDS and name.endswith("List") and name[:-4] in FIELDS:
        fields = [Field(1, "metadata"), Field(2, "items")]
        return Message(name, {f.number: f for f in fields}, {f.name: f for f in fields}, True)
    spec = FIELDS.get(name)
    if spec is None:
        raise NotEncodable(f"no protobuf field numbers for {name}")
    by_number: dict[int, Field] = {}
    by_name: dict[str, Field] = {}
    always = ALWAYS.get(name, frozenset())
    for token in spec.split():
        left, _, right = token.partition("=")
        if left.startswith("+"):
            field = Field(int(left[1:]), "", inline=right)
            for inner in message(right).by_name:
                by_name[inner] = field
        else:
            field = Field(int(right.rstrip("?")), left,
                          pointer=right.endswith("?") or left in always)
            by_name[left] = field
        by_number[field.number] = field
    return Message(name, by_number, by_name)


# ---------------------------------------------------------------- wire primitives

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64: ten bytes of two's complement, as Go
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LEN) + _varint(len(payload)) + payload


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field of a message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            yield number, wire, buf[pos:pos + size]
            pos += size
        elif wire == _I64:
            pos += 8
            yield number, wire, buf[pos - 8:pos]
        elif wire == _I32:
            pos += 4
            yield number, wire, buf[pos - 4:pos]
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")


# ---------------------------------------------------------------- envelope

def decode(body: bytes) -> Obj:
    """A protobuf request body as the JSON object it stands for (with apiVersion/kind)."""
    if not body.startswith(MAGIC):
        raise errors.BadRequest("the protobuf body does not start with the k8s\\x00 magic: "
                                "send a body encoded by a Kubernetes client")
    try:
        api_version = kind = encoding = ""
        raw = b""
        for number, _, value in fields(body[len(MAGIC):]):
            if number == 1 and isinstance(value, bytes):
                for n, _, v in fields(value):
                    if isinstance(v, bytes):
                        if n == 1:
                            api_version = v.decode()
                        elif n == 2:
                            kind = v.decode()
            elif number == 2 and isinstance(value, bytes):
                raw = value
            elif number == 3 and isinstance(value, bytes):
                encoding = value.decode()
        if encoding:
            raise errors.UnsupportedMediaType(
                f"protobuf content encoding {encoding!r} is not supported: send the object "
                "without a content encoding")
        name = definition_of(api_version, kind)
        if name is None:
            raise errors.UnsupportedMediaType(
                f"the sandbox API server cannot decode {kind or 'an object'} "
                f"({api_version or 'no apiVersion'}) from protobuf: send it as JSON "
                "(kubectl create -f FILE)")
        obj = {"apiVersion": api_version, "kind": kind}
        obj.update(_decode_message(raw, name, schema.for_kind(name)))
        return obj
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"the protobuf body is malformed: {exc}") from exc


def encode(obj: Obj) -> bytes:
    """The wire form of a JSON object; NotEncodable when the codec cannot say it all."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    name = definition_of(api_version, kind)
    if name is None:
        raise NotEncodable(f"no protobuf form for {api_version}/{kind}")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    raw = _encode_message(body, name, schema.for_kind(name))
    type_meta = _len_field(1, api_version.encode()) + _len_field(2, kind.encode())
    return MAGIC + _len_field(1, type_meta) + _len_field(2, raw) + \
        _len_field(3, b"") + _len_field(4, b"")


# ---------------------------------------------------------------- watch streams

def watch_frame(event_type: str, obj: Obj) -> bytes:
    """One event of a protobuf watch stream, as kube-apiserver frames it: a 4-byte
    big-endian length, then `meta.v1.WatchEvent {type=1 string, object=2 RawExtension}`
    whose `raw` (field 1) is the object's whole encoding (magic + runtime.Unknown).
    The event itself has no magic or envelope (the stream serializer is the raw one)."""
    event = _len_field(1, event_type.encode()) + _len_field(2, _len_field(1, encode(obj)))
    return len(event).to_bytes(4, "big") + event


def watch_events(stream: bytes) -> list[tuple[str, Obj]]:
    """(type, object) of every complete frame of a protobuf watch stream."""
    out: list[tuple[str, Obj]] = []
    pos = 0
    while pos + 4 <= len(stream):
        size = int.from_bytes(stream[pos:pos + 4], "big")
        frame = stream[pos + 4:pos + 4 + size]
        if len(frame) < size:
            break
        pos += 4 + size
        event_type, raw = "", b""
        for number, _, value in fields(frame):
            if number == 1 and isinstance(value, bytes):
                event_type = value.decode()
            elif number == 2 and isinstance(value, bytes):
                raw = next((v for n, _, v in fields(value) if n == 1 and isinstance(v, bytes)),
                           b"")
        out.append((event_type, decode(raw)))
    return out


# ---------------------------------------------------------------- messages

def _item_definition(list_name: str) -> str:
    return list_name[:-4]


def _decode_message(buf: bytes, name: str, sch: schema.Schema | None) -> Obj:
    msg = message(name)
    out: Obj = {}
    for number, wire, value in fields(buf):
        field = msg.by_number.get(number)
        if field is None:
            continue  # unknown fields are skipped, as Go's generated unmarshalers do
        if field.inline:
            if isinstance(value, bytes):
                out.update(_decode_message(value, field.inline, sch))
            continue
        if msg.is_list and field.name == "items":
            item = _item_definition(name)
            if isinstance(value, bytes):
                out.setdefault("items", []).append(
                    _decode_message(value, item, schema.for_kind(item)))
            continue
        if msg.is_list:
            sub: schema.Schema | None = schema.for_kind(META + "ListMeta")
            if isinstance(value, bytes):
                out["metadata"] = _decode_message(value, META + "ListMeta", sub)
            continue
        sub = schema.prop(sch, field.name)
        kind = schema.type_of(sub)
        if kind == "array":
            out.setdefault(field.name, []).extend(_decode_repeated(wire, value,
                                                                   schema.items(sub)))
        elif kind == "object" and schema.is_map(sub):
            if isinstance(value, bytes):
                k, v = _decode_entry(value, schema.values(sub))
                out.setdefault(field.name, {})[k] = v
        else:
            decoded = _decode_value(wire, value, sub)
            if decoded is _ABSENT:
                continue
            if not field.pointer and decoded in ("", 0, False) and \
                    not isinstance(decoded, dict):
                continue  # Go marshals unset non-pointer scalars as zero: JSON omits them
            out[field.name] = decoded
    return out


class _Absent:
    pass


_ABSENT = _Absent()


def _decode_repeated(wire: int, value: int | bytes, item: schema.Schema | None) -> list[Any]:
    kind = schema.type_of(item)
    if kind in ("integer", "boolean") and wire == _LEN and isinstance(value, bytes):
        out: list[Any] = []  # packed
        pos = 0
        while pos < len(value):
            v, pos = _read_varint(value, pos)
            out.append(bool(v) if kind == "boolean" else _signed(v))
        return out
    decoded = _decode_value(wire, value, item)
    return [] if decoded is _ABSENT else [decoded]


def _decode_entry(buf: bytes, value_schema: schema.Schema | None) -> tuple[str, Any]:
    key = ""
    value: Any = _ABSENT
    kind = schema.type_of(value_schema)
    for number, wire, v in fields(buf):
        if number == 1 and isinstance(v, bytes):
            key = v.decode()
        elif number == 2 and kind == "array":
            value = [x.decode() for n, _, x in fields(v) if n == 1 and isinstance(x, bytes)] \
                if isinstance(v, bytes) else []
        elif number == 2:
            value = _decode_value(wire, v, value_schema)
    if value is _ABSENT:  # Go leaves a zero value out of the entry
        value = [] if kind == "array" else ("" if kind in ("string", "quantity") else None)
    return key, value


def _decode_value(wire: int, value: int | bytes, sub: schema.Schema | None) -> Any:
    ref = schema.ref_name(sub) if sub else None
    kind = schema.type_of(sub)
    if wire == _I64 and isinstance(value, bytes):  # a double
        number = struct.unpack("<d", value)[0]
        return int(number) if number.is_integer() else number  # as Go's JSON writes it
    if ref in _FREE_FORM and isinstance(value, bytes):
        return _decode_free_form(ref, value)
    if isinstance(value, int):
        if kind == "boolean":
            return bool(value)
        return _signed(value)
    if ref in _TIME:
        return _decode_time(value, micro=ref == _TIME[1])
    if ref == _FIELDS_V1:
        raw = next((v for n, _, v in fields(value) if n == 1 and isinstance(v, bytes)), b"")
        return json.loads(raw) if raw else {}
    if kind == "quantity":
        return next((v.decode() for n, _, v in fields(value) if n == 1
                     and isinstance(v, bytes)), "")
    if kind == "int-or-string":
        typ, ival, sval = 0, 0, ""
        for n, _, v in fields(value):
            if n == 1 and isinstance(v, int):
                typ = v
            elif n == 2 and isinstance(v, int):
                ival = _signed(v)
            elif n == 3 and isinstance(v, bytes):
                sval = v.decode()
        return sval if typ == 1 else ival
    if kind == "string":
        if schema.resolve(sub).get("format") == "byte":
            return base64.b64encode(value).decode()
        return value.decode()
    if kind == "object" and ref is not None:
        return _decode_message(value, ref, sub)
    return _ABSENT


def _props(buf: bytes) -> Obj:
    return _decode_message(buf, _PROPS, schema.for_kind(_PROPS))


def _decode_free_form(ref: str | None, buf: bytes) -> Any:
    parts = [(n, v) for n, _, v in fields(buf)]
    first = [v for n, v in parts if n == 1]
    second = [v for n, v in parts if n == 2]
    if ref in _RAW_JSON:
        raw = first[0] if first and isinstance(first[0], bytes) else b""
        return json.loads(raw) if raw else _ABSENT
    if ref == _OR_BOOL:
        if second and isinstance(second[0], bytes):
            return _props(second[0])
        return bool(first and first[0])
    if first and isinstance(first[0], bytes):  # OrArray / OrStringArray: one schema
        return _props(first[0])
    if ref == _OR_ARRAY:
        return [_props(v) for v in second if isinstance(v, bytes)]
    return [v.decode() for v in second if isinstance(v, bytes)]


def _encode_free_form(ref: str | None, value: Any) -> bytes:
    def props(v: Any) -> bytes:
        if not isinstance(v, dict):
            raise NotEncodable(f"a JSONSchemaProps must be an object, not {v!r}")
        return _encode_message(v, _PROPS, schema.for_kind(_PROPS))

    if ref in _RAW_JSON:
        return _len_field(1, json.dumps(value, separators=(",", ":")).encode())
    if ref == _OR_BOOL:
        if isinstance(value, bool):
            return _key(1, _VARINT) + _varint(int(value))
        return _key(1, _VARINT) + _varint(1) + _len_field(2, props(value))
    if isinstance(value, list):
        if ref == _OR_ARRAY:
            return b"".join(_len_field(2, props(v)) for v in value)
        return b"".join(_len_field(2, str(v).encode()) for v in value)
    return _len_field(1, props(value))


def _decode_time(buf: bytes, micro: bool) -> Any:
    if not buf:
        return _ABSENT  # Go's zero time (JSON null): the empty message
    seconds = nanos = 0
    for n, _, v in fields(buf):
        if n == 1 and isinstance(v, int):
            seconds = _signed(v)
        elif n == 2 and isinstance(v, int):
            nanos = _signed(v)
    t = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_message(obj: Obj, name: str, sch: schema.Schema | None) -> bytes:
    msg = message(name)
    out = bytearray()
    inline: dict[int, Obj] = {}
    for key, value in obj.items():
        field = msg.by_name.get(key)
        if field is None:
            raise NotEncodable(f"{name} has no protobuf field for {key!r}")
        if value is None:
            continue
        if field.inline:
            inline.setdefault(field.number, {})[key] = value
            continue
        if msg.is_list:
            if key == "items":
                item = _item_definition(name)
                for element in value:
                    out += _len_field(2, _encode_message(
                        {k: v for k, v in element.items() if k not in ("apiVersion", "kind")},
                        item, schema.for_kind(item)))
            else:
                out += _len_field(1, _encode_message(value, META + "ListMeta",
                                                     schema.for_kind(META + "ListMeta")))
            continue
        sub = schema.prop(sch, key)
        kind = schema.type_of(sub)
        if kind == "array":
            if not isinstance(value, list):
                raise NotEncodable(f"{name}.{key} is not a list")
            for element in value:
                out += _encode_value(field.number, element, schema.items(sub))
        elif kind == "object" and schema.is_map(sub):
            if not isinstance(value, dict):
                raise NotEncodable(f"{name}.{key} is not a map")
            for k in sorted(value):  # Go marshals map keys sorted
                out += _len_field(field.number, _len_field(1, str(k).encode())
                                  + _encode_value(2, value[k], schema.values(sub)))
        else:
            out += _encode_value(field.number, value, sub)
    for number, members in sorted(inline.items()):
        field = msg.by_number[number]
        out += _len_field(number, _encode_message(members, field.inline, sch))
    return bytes(out)


def _encode_value(number: int, value: Any, sub: schema.Schema | None) -> bytes:
    ref = schema.ref_name(sub) if sub else None
    kind = schema.type_of(sub)
    if value is None:
        return b""
    if ref in _FREE_FORM:
        return _len_field(number, _encode_free_form(ref, value))
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return _key(number, _I64) + struct.pack("<d", float(value))
    if ref in _TIME:
        return _len_field(number, _encode_time(str(value)))
    if ref == _FIELDS_V1:
        return _len_field(number, _len_field(1, json.dumps(value, separators=(",", ":"))
                                             .encode()))
    if kind == "quantity":
        return _len_field(number, _len_field(1, str(value).encode()))
    if kind == "int-or-string":
        if isinstance(value, int) and not isinstance(value, bool):
            return _len_field(number, _key(1, _VARINT) + _varint(0) + _key(2, _VARINT)
                              + _varint(value))
        return _len_field(number, _key(1, _VARINT) + _varint(1) + _len_field(3,
                                                                           str(value).encode()))
    if kind == "boolean" and isinstance(value, bool):
        return _key(number, _VARINT) + _varint(int(value))
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return _key(number, _VARINT) + _varint(value)
    if kind == "string" and isinstance(value, str):
        if schema.resolve(sub).get("format") == "byte":
            return _len_field(number, base64.b64decode(value))
        return _len_field(number, value.encode())
    if kind == "array" and isinstance(value, list):  # map<string, []string> values
        return _len_field(number, b"".join(_len_field(1, str(v).encode()) for v in value))
    if kind == "object" and ref is not None and isinstance(value, dict):
        return _len_field(number, _encode_message(value, ref, sub))
    raise NotEncodable(f"cannot encode {value!r} as {kind or 'an untyped field'}")


def _encode_time(text: str) -> bytes:
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise NotEncodable(f"not an RFC 3339 time: {text!r}") from exc
    seconds = int(t.timestamp())
    nanos = t.microsecond * 1000
    out = _key(1, _VARINT) + _varint(seconds)
    if nanos:
        out += _key(2, _VARINT) + _varint(nanos)
    return out


def encodable_kinds() -> list[str]:
    """apiVersion/kind of every served resource the codec can encode (for tests)."""
    return [f"{r.api_version}/{r.kind}" for r in RESOURCES if r.definition_name in FIELDS]
