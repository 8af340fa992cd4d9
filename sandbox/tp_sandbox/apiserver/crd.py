"""CustomResourceDefinitions: a CRD that is written makes its resources served at once
(discovery, CRUD, list/watch, the status and scale subresources it declares); objects
are defaulted, pruned and validated against the version's `openAPIV3Schema` with the
upstream messages (`spec.replicas: Invalid value: "x": spec.replicas in body must be of
type integer: "x"`); tables use `additionalPrinterColumns`; deleting the CRD deletes
its objects first, as the apiextensions server's cleanup finalizer does.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from typing import TYPE_CHECKING, Any

from . import errors
from .resources import ResourceType, register_custom, unregister_custom

if TYPE_CHECKING:
    from .handlers import Api

Obj = dict[str, Any]
Cause = dict[str, str]
KIND = "CustomResourceDefinition"
_META_KEYS = ("apiVersion", "kind", "metadata")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- serving

def resource_types(crd: Obj) -> tuple[ResourceType, ...]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = tuple(s for s in ("status", "scale") if s in (v.get("subresources") or {}))
        out.append(ResourceType(
            str(spec.get("group")), str(v.get("name")), str(names.get("kind")),
            str(names.get("plural")), spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), subresources=subs,
            custom={"crd": crd["metadata"]["name"],
                    "schema": (v.get("schema") or {}).get("openAPIV3Schema") or {},
                    "columns": list(v.get("additionalPrinterColumns") or []),
                    "scale": (v.get("subresources") or {}).get("scale")}))
    return tuple(out)


def check(crd: Obj) -> None:
    """The CRD's own rules a real server enforces before serving anything."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = crd.get("metadata", {}).get("name", "")
    causes: list[Cause] = []
    if names.get("plural") and spec.get("group") and \
            name != f"{names['plural']}.{spec['group']}":
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": must be spec.names.plural+"."'
                                  "+spec.group"})
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                       "message": f"Invalid value: {json.dumps(versions)[:80]}: must have "
                                  "exactly one version marked as storage version"})
    if causes:
        raise errors.Invalid.of(KIND, "apiextensions.k8s.io", name, causes)


def established(crd: Obj) -> Obj:
    """The status a CRD has once its names are accepted and it is served."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind')}List")
    old = crd.get("status") or {}
    when = {c.get("type"): c.get("lastTransitionTime") for c in old.get("conditions") or []}
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), None)
    stored = list(old.get("storedVersions") or [])
    if storage and storage not in stored:
        stored.append(storage)
    return {"conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found",
         "lastTransitionTime": when.get("NamesAccepted") or _now()},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted",
         "lastTransitionTime": when.get("Established") or _now()}],
        "acceptedNames": names, "storedVersions": stored}


def serve(crd: Obj) -> None:
    register_custom(crd["metadata"]["name"], resource_types(crd))


def restore(api: Api) -> None:
    """Serve every CRD already in the store (an API server started on old state)."""
    for crd in api.store.list(api.rt("apiextensions.k8s.io", "customresourcedefinitions")):
        serve(crd)


def remove(api: Api, crd: Obj) -> None:
    """Delete the CRD's objects (watchers see DELETED), then stop serving its types."""
    for rt in resource_types(crd):
        for obj in api.store.list(rt):
            api.store.remove(rt, obj)
    unregister_custom(crd["metadata"]["name"])


# ---------------------------------------------------------------- validation

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else (
        "true" if value is True else "false" if value is False else
        str(value) if isinstance(value, int | float) else json.dumps(value))


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "integer"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _walk(value: Any, schema: Obj, path: str, causes: list[Cause]) -> Any:
    """Validate `value` at `path`; return it defaulted and pruned of unknown fields."""
    kind = schema.get("type")
    where = path or "<root>"
    if value is None and schema.get("nullable"):
        return value
    if kind and not _type_ok(value, kind):
        causes.append({"reason": "FieldValueTypeInvalid", "field": path,
                       "message": f"Invalid value: \"{_go_type(value)}\": {where} in body "
                                  f"must be of type {kind}: {_shown(value)}"})
        return value
    if "enum" in schema and value not in schema["enum"]:
        causes.append({"reason": "FieldValueNotSupported", "field": path,
                       "message": f"Unsupported value: {_shown(value)}: supported values: "
                                  + ", ".join(_shown(e) for e in schema["enum"])})
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append({"reason": "FieldValueInvalid", "field": path,
                           "message": f"Invalid value: {_shown(value)}: {where} in body "
                                      f"should be greater than or equal to {schema['minimum']}"})
        if "maximum" in schema and value > schema["maximum"]:
            causes.append({"reason": "FieldValueInvalid", "field": path,
                           "message": f"Invalid value: {_shown(value)}: {where} in body "
                                      f"should be less than or equal to {schema['maximum']}"})
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append({"reason": "FieldValueInvalid", "field": path,
                           "message": f"Invalid value: {_shown(value)}: {where} in body "
                                      f"should match '{schema['pattern']}'"})
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append({"reason": "FieldValueTooLong", "field": path,
                           "message": f"Too long: may not be more than {schema['maxLength']} "
                                      "bytes"})
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append({"reason": "FieldValueInvalid", "field": path,
                           "message": f"Invalid value: {_shown(value)}: {where} in body "
                                      f"should be at least {schema['minLength']} chars long"})
    if isinstance(value, list):
        items = schema.get("items") or {}
        value = [_walk(v, items, f"{path}[{i}]", causes) for i, v in enumerate(value)]
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append({"reason": "FieldValueTooMany", "field": path,
                           "message": f"Too many: {len(value)}: must have at most "
                                      f"{schema['maxItems']} items"})
    if isinstance(value, dict):
        props: Obj = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_all = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        out: Obj = {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value = {**value, key: copy.deepcopy(sub["default"])}
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key in props:
                out[key] = _walk(item, props[key], child, causes)
            elif isinstance(extra, dict):
                out[key] = _walk(item, extra, child, causes)
            elif keep_all or (not path and key in _META_KEYS):
                out[key] = item
            # else: pruned, as a structural schema drops unknown fields silently
        for key in schema.get("required") or []:
            if key not in value:
                child = f"{path}.{key}" if path else key
                causes.append({"reason": "FieldValueRequired", "field": child,
                               "message": "Required value"})
        return out
    return value


def validate(obj: Obj, rt: ResourceType) -> None:
    """Default, prune (in place) and validate a custom object; 422 with every cause."""
    assert rt.custom is not None
    schema = dict(rt.custom.get("schema") or {})
    causes: list[Cause] = []
    cleaned = _walk(obj, schema, "", causes) if schema else obj
    if isinstance(cleaned, dict) and cleaned is not obj:
        obj.clear()
        obj.update(cleaned)
    name = obj.get("metadata", {}).get("name") or ""
    if causes:
        raise errors.Invalid.of(rt.kind, rt.group, name, causes)


# ---------------------------------------------------------------- printer columns

def json_path(obj: Any, expr: str) -> Any:
    """The value of a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`)."""
    cur = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", expr.strip().strip("{}")):
        if part.startswith("["):
            idx = int(part[1:-1])
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
        else:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return cur


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    """autoscaling/v1 Scale of a custom object, through the CRD's replica paths."""
    paths = (rt.custom or {}).get("scale") or {}
    md = obj["metadata"]
    status: Obj = {"replicas": json_path(obj, paths.get("statusReplicasPath", "")) or 0}
    if paths.get("labelSelectorPath"):
        status["selector"] = json_path(obj, paths["labelSelectorPath"]) or ""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                            "creationTimestamp") if k in md},
            "spec": {"replicas": json_path(obj, paths.get("specReplicasPath", "")) or 0},
            "status": status}


def set_replicas(rt: ResourceType, obj: Obj, replicas: int) -> None:
    """Write `replicas` at the CRD's `specReplicasPath` (e.g. `.spec.replicas`)."""
    path = str(((rt.custom or {}).get("scale") or {}).get("specReplicasPath", ".spec.replicas"))
    keys = [k for k in path.strip(".").split(".") if k]
    cur = obj
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
    cur[keys[-1]] = replicas


def columns(rt: ResourceType) -> list[tuple[str, str, int, Any]] | None:
    """(name, type, priority, cell) per printer column (Name first), or None without any;
    a `date` cell holds the timestamp (the table renders it as an age)."""
    specs = (rt.custom or {}).get("columns") or []
    if not specs:
        return None
    out: list[tuple[str, str, int, Any]] = [
        ("Name", "string", 0, lambda o: o.get("metadata", {}).get("name", ""))]
    for col in specs:
        path = str(col.get("jsonPath", ""))

        def cell(o: Obj, path: str = path) -> Any:
            value = json_path(o, path)
            return value if value is not None else None

        out.append((str(col.get("name")), str(col.get("type", "string")),
                    int(col.get("priority") or 0), cell))
    return out
