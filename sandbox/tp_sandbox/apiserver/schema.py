"""The real Kubernetes type definitions, as OpenAPI 3.0 component schemas.

The definitions come from the `kubernetes-validate` package (the JSON-Schema rendering of
the upstream OpenAPI of Kubernetes 1.37). They are loaded once, lazily, and converted to the
shape the upstream API server publishes under `/openapi/v3`:

- `"type": [T, "null"]` becomes `"type": T` (optional fields are simply absent);
- `"$ref": "#/$defs/X"` becomes `"#/components/schemas/X"`, wrapped in `allOf` when the
  reference carries siblings (a description), because OpenAPI 3.0 ignores siblings of `$ref`;
- IntOrString becomes `type: string, format: int-or-string` (as upstream), Quantity keeps its
  `oneOf` of string/number;
- the `enum`s the JSON-Schema generator added to `apiVersion`/`kind` are dropped (upstream has
  none; the group-version-kind lives in `x-kubernetes-group-version-kind`);
- every `x-kubernetes-*` extension (patch strategy, merge key, list type, map keys, gvk) is kept.

The navigation helpers (`resolve`, `prop`, `items`, `values`, `patch_meta`) are what the
patch, validation and defaults modules use, so that they all read the same schema.

Errors:
    SchemaError (RuntimeError)   the definitions file is missing or names an unknown type
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

DEFINITIONS_VERSION = "v1.37.0-local"
REF_PREFIX = "#/components/schemas/"
_JSONSCHEMA_REF_PREFIX = "#/$defs/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


class SchemaError(RuntimeError):
    """The Kubernetes definitions cannot be loaded or a type is unknown."""


def _definitions_file() -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent
    return base / "kubernetes-json-schema" / DEFINITIONS_VERSION / "_definitions.json"


def _convert(node: Any, *, top: bool = False) -> Any:
    """Convert one JSON-Schema node (recursively) to OpenAPI 3.0."""
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out["type"] = types[0] if len(types) == 1 else types
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = REF_PREFIX + value.removeprefix(_JSONSCHEMA_REF_PREFIX)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    if top and "properties" in out and "x-kubernetes-group-version-kind" in out:
        for name in ("apiVersion", "kind"):
            out["properties"].get(name, {}).pop("enum", None)
    return out


@cache
def definitions() -> dict[str, Schema]:
    """All definitions by name (e.g. `io.k8s.api.apps.v1.Deployment`), converted, cached.

    Callers must not modify the returned schemas (copy them first).
    """
    path = _definitions_file()
    try:
        with path.open(encoding="utf-8") as f:
            raw = json.load(f)["$defs"]
    except (OSError, KeyError, ValueError) as e:
        raise SchemaError(
            f"cannot read the Kubernetes definitions at {path} ({e}); "
            "reinstall kubernetes-validate==1.37.0") from e
    out = {name: _convert(body, top=True) for name, body in raw.items()}
    out[INT_OR_STRING] = {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "type": "string",
        "format": "int-or-string",
    }
    out[QUANTITY] = {
        "description": "Quantity is a fixed-point representation of a number.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    }
    return out


def definition(name: str) -> Schema:
    """One definition by name; `SchemaError` if Kubernetes has no such type."""
    try:
        return definitions()[name]
    except KeyError:
        raise SchemaError(f"unknown Kubernetes type {name!r}") from None


def ref_name(schema: Schema) -> str | None:
    """The definition a schema refers to (directly or through `allOf`), if any."""
    ref = schema.get("$ref")
    if ref is None and schema.get("allOf"):
        ref = schema["allOf"][0].get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        return ref[len(REF_PREFIX):]
    return None


def resolve(schema: Schema | None) -> Schema:
    """Follow references until a concrete schema; `{}` (anything) for None."""
    seen = 0
    while schema is not None:
        name = ref_name(schema)
        if name is None:
            return schema
        schema = definition(name)
        seen += 1
        if seen > 32:
            raise SchemaError(f"reference loop at {name}")
    return {}


def prop(schema: Schema | None, name: str) -> Schema | None:
    """The (unresolved) schema of property `name` of an object schema, or None if unknown."""
    props = resolve(schema).get("properties")
    if isinstance(props, dict):
        sub = props.get(name)
        return sub if isinstance(sub, dict) else None
    return None


def items(schema: Schema | None) -> Schema | None:
    """The schema of an array's elements."""
    sub = resolve(schema).get("items")
    return sub if isinstance(sub, dict) else None


def values(schema: Schema | None) -> Schema | None:
    """The schema of a map's values (`additionalProperties`)."""
    sub = resolve(schema).get("additionalProperties")
    return sub if isinstance(sub, dict) else None


def is_map(schema: Schema | None) -> bool:
    s = resolve(schema)
    return isinstance(s.get("additionalProperties"), dict) and "properties" not in s


def type_of(schema: Schema | None) -> str | None:
    """`object`, `array`, `string`, `integer`, `number`, `boolean`, `int-or-string`,
    `quantity` or None (anything)."""
    if schema is None:
        return None
    name = ref_name(schema)
    if name == INT_OR_STRING:
        return "int-or-string"
    if name == QUANTITY:
        return "quantity"
    s = resolve(schema)
    if s.get("format") == "int-or-string":
        return "int-or-string"
    t = s.get("type")
    if isinstance(t, str):
        return t
    if "properties" in s or "additionalProperties" in s:
        return "object"
    if "oneOf" in s:
        return "quantity"
    return None


def patch_meta(schema: Schema | None) -> tuple[frozenset[str], str | None]:
    """Strategic-merge metadata of a field: (strategies, merge key).

    The extensions sit on the field itself (next to `allOf`/`items`), not on the type.
    """
    if not schema:
        return frozenset(), None
    strategy = schema.get("x-kubernetes-patch-strategy", "")
    strategies = frozenset(s for s in str(strategy).split(",") if s)
    key = schema.get("x-kubernetes-patch-merge-key")
    return strategies, key if isinstance(key, str) else None


def for_kind(definition_name: str) -> Schema:
    """A resource's top-level schema (reference form), for walking with `prop`."""
    definition(definition_name)
    return {"$ref": REF_PREFIX + definition_name}


def closure(names: list[str]) -> list[str]:
    """The given definitions and every definition they reference, transitively, sorted."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_refs(definition(name)))
    return sorted(seen)


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.append(ref[len(REF_PREFIX):])
        for key, value in node.items():
            if key != "$ref":
                found.extend(_refs(value))
    elif isinstance(node, list):
        for x in node:
            found.extend(_refs(x))
    return found


def component_schemas(names: list[str]) -> dict[str, Schema]:
    """Deep copies of the closure of `names`, ready to be a document's `components.schemas`."""
    return {name: copy.deepcopy(definition(name)) for name in closure(names)}
