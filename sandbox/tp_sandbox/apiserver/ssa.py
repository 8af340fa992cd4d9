"""Field management: `metadata.managedFields` and server-side apply.

Every write by a named manager records which fields that manager owns, in the FieldsV1
format a real API server uses (`f:<field>`, `k:{<list-map keys>}`, `v:<set value>`,
`.` for a node owned itself). List and map semantics come from the schema's
`x-kubernetes-list-type` / `x-kubernetes-list-map-keys` / `x-kubernetes-map-type`.

    managed_after_write(old, new, manager, rt, subresource)
        an Update: the manager takes the fields whose values it changed (others lose
        them); removed fields leave every set
    apply(current, config, manager, rt, force=, subresource=) -> (object, managedFields)
        an Apply (`application/apply-patch+yaml`): conflicts with other owners of a
        field whose value would change are a 409 unless `force`; fields the manager
        applied before and no longer does, and nobody else owns, are removed; `kubectl`
        may take over what its last-applied annotation covers (its move from
        client-side apply)

A field path is a tuple of FieldsV1 keys, e.g. ("f:spec", "f:replicas").
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

import yaml

from tp_sandbox.apiserver import errors, schema
from tp_sandbox.apiserver.resources import ResourceType

Obj = dict[str, Any]
Path = tuple[str, ...]
APPLY_PATCH = "application/apply-patch+yaml"
MAX_MANAGER_LENGTH = 128

# Metadata the server owns: never part of a field set.
_SYSTEM_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation",
                          "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "managedFields", "selfLink"})
_ELEMENT = object()  # the value of a list element's own node
_MAP = object()  # the value of a map's own node (an Update that adds a map owns it)
# Defaults of list-map key fields an applied element may leave out (upstream applies
# the type's defaults before merging): e.g. ports keyed by (containerPort, protocol).
_KEY_DEFAULTS = {"protocol": "TCP"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_from_user_agent(user_agent: str) -> str:
    """Upstream's default manager: the User-Agent up to its first `/`."""
    return user_agent.split("/", 1)[0][:MAX_MANAGER_LENGTH]


# ---------------------------------------------------------------- field sets

def _list_type(field: schema.Schema | None) -> tuple[str, list[str]]:
    if not field:
        return "atomic", []
    resolved = schema.resolve(field)
    kind = field.get("x-kubernetes-list-type") or resolved.get("x-kubernetes-list-type")
    keys = field.get("x-kubernetes-list-map-keys") or resolved.get(
        "x-kubernetes-list-map-keys") or []
    return str(kind or "atomic"), list(keys)


def _atomic_map(field: schema.Schema | None) -> bool:
    if not field:
        return False
    return "atomic" in (field.get("x-kubernetes-map-type"),
                        schema.resolve(field).get("x-kubernetes-map-type"))


def _element_key(element: Any, keys: list[str]) -> str:
    if not isinstance(element, dict):
        return "v:" + json.dumps(element, separators=(",", ":"))
    values = {k: element.get(k, _KEY_DEFAULTS.get(k)) for k in sorted(keys)}
    return "k:" + json.dumps({k: v for k, v in values.items() if v is not None},
                             separators=(",", ":"))


def _flatten(value: Any, field: schema.Schema | None, path: Path, out: dict[Path, Any],
             map_nodes: bool) -> None:
    if isinstance(value, dict) and value and not _atomic_map(field):
        is_map = schema.is_map(field)
        if is_map and map_nodes:
            out[path] = _MAP
        for key, sub in value.items():
            child = schema.values(field) if is_map else schema.prop(field, key)
            _flatten(sub, child, (*path, f"f:{key}"), out, map_nodes)
        return
    if isinstance(value, list) and value:
        kind, keys = _list_type(field)
        if kind == "map" and keys:
            for element in value:
                node = (*path, _element_key(element, keys))
                out[node] = _ELEMENT
                _flatten(element, schema.items(field), node, out, map_nodes)
            return
        if kind == "set":
            for element in value:
                out[(*path, _element_key(element, []))] = _ELEMENT
            return
    out[path] = value


def _top_schema(rt: ResourceType) -> schema.Schema:
    """The object's schema: a custom type's own `openAPIV3Schema` (metadata as ObjectMeta),
    else the built-in definition."""
    if rt.custom is None:
        return schema.for_kind(rt.definition_name)
    own = dict(rt.custom.get("schema") or {})
    props = dict(own.get("properties") or {})
    props["metadata"] = {"$ref": schema.REF_PREFIX
                         + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    own["properties"] = props
    return own


def flatten(obj: Obj, rt: ResourceType, subresource: str = "", map_nodes: bool = False
            ) -> dict[Path, Any]:
    """Leaf paths (and list elements; maps too with `map_nodes`) of an object -> their
    values, in the scope a write to `subresource` ("" or "status") manages."""
    top = _top_schema(rt)
    out: dict[Path, Any] = {}
    for key, raw in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if "status" in rt.subresources and (key == "status") != (subresource == "status"):
            continue
        value = _user_metadata(raw) if key == "metadata" else raw
        if key == "metadata" and not value:
            continue
        _flatten(value, schema.prop(top, key), (f"f:{key}",), out, map_nodes)
    return out


def _user_metadata(md: Any) -> Any:
    if not isinstance(md, dict):
        return md
    return {k: v for k, v in md.items() if k not in _SYSTEM_META}


def to_fields_v1(paths: set[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for key, sub in tree.items():
        if key == ".":
            out.add(prefix)
        elif isinstance(sub, dict) and sub:
            out |= from_fields_v1(sub, (*prefix, key))
        else:
            out.add((*prefix, key))
    return out


def path_text(path: Path) -> str:
    """A path as upstream prints it: `.spec.containers[name="web"].image`."""
    out = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


# ---------------------------------------------------------------- managedFields entries

def _entries(obj: Obj | None) -> list[Obj]:
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [copy.deepcopy(e) for e in entries if isinstance(e, dict)]


def normalise(entries: list[Any]) -> list[Obj]:
    """managedFields a client sent, in the stored form (clients may spell times as
    `+00:00` instead of `Z`): so that sending back what was read is no change."""
    out = []
    for sent in entries:
        if not isinstance(sent, dict):
            continue
        entry = dict(sent)
        when = entry.get("time")
        if isinstance(when, str):
            try:
                parsed = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
                entry["time"] = parsed.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                raise errors.BadRequest(f"metadata.managedFields: invalid time {when!r}: "
                                        "use RFC 3339") from None
        out.append(entry)
    return out


def _entry(manager: str, operation: str, rt: ResourceType, paths: set[Path],
           subresource: str) -> Obj:
    entry: Obj = {"manager": manager, "operation": operation, "apiVersion": rt.api_version,
                  "time": _now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _same(entry: Obj, manager: str, operation: str, subresource: str) -> bool:
    return (entry.get("manager"), entry.get("operation"), entry.get("subresource", "")) == \
        (manager, operation, subresource)


def _with_sets(entries: list[Obj], sets: list[set[Path]]) -> list[Obj]:
    out = []
    for entry, paths in zip(entries, sets, strict=True):
        if paths:
            entry["fieldsV1"] = to_fields_v1(paths)
            out.append(entry)
    return out


def managed_after_write(old: Obj | None, new: Obj, manager: str, rt: ResourceType,
                        subresource: str = "", *, base: list[Obj] | None = None
                        ) -> list[Obj]:
    """managedFields after a create/update/patch (operation Update) by `manager`
    through `subresource` ("", "status", "scale"); `base`: the entries the writer sent,
    which replace the live ones."""
    scope = "status" if subresource == "status" else ""
    entries = [copy.deepcopy(e) for e in base if isinstance(e, dict)] if base \
        else _entries(old)
    old_flat = flatten(old, rt, scope, map_nodes=True) if old else {}
    new_flat = flatten(new, rt, scope, map_nodes=True)
    changed = {p for p, v in new_flat.items() if p not in old_flat or old_flat[p] != v}
    removed = set(old_flat) - set(new_flat)
    if old is not None and not changed and not removed:
        return entries  # a no-op write leaves ownership (and timestamps) alone
    sets = [from_fields_v1(e.get("fieldsV1")) for e in entries]
    own = next((i for i, e in enumerate(entries) if _same(e, manager, "Update", subresource)),
               None)
    for i, paths in enumerate(sets):
        if i != own:
            sets[i] = paths - changed - removed  # an update takes over what it changed
    if own is None:
        entries.append(_entry(manager, "Update", rt, set(), subresource))
        sets.append(set())
        own = len(entries) - 1
    sets[own] = (sets[own] | changed) - removed
    entries[own]["time"] = _now()
    return _with_sets(entries, sets)


# ---------------------------------------------------------------- apply

def decode_config(body: bytes) -> Obj:
    """The applied configuration (YAML or JSON, as kubectl sends it)."""
    try:
        config = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.BadRequest("the applied configuration must be an object: send the "
                                "manifest of one object")
    if isinstance(config.get("metadata"), dict) and config["metadata"].get("managedFields"):
        raise errors.BadRequest("metadata.managedFields must be nil: remove it from the "
                                "applied configuration")
    for key in ("apiVersion", "kind"):
        if not config.get(key):
            raise errors.BadRequest(f"invalid object type: {key} not set in the applied "
                                    "configuration: add it to the manifest")
    return config


def _conflict_error(conflicts: list[tuple[Obj, Path]]) -> errors.Conflict:
    def who(entry: Obj) -> str:
        text = json.dumps(entry.get("manager", ""))
        if entry.get("subresource"):
            text += f" with subresource {json.dumps(entry['subresource'])}"
        if entry.get("operation") == "Update":
            text += f" using {entry.get('apiVersion')}"
            if entry.get("time"):
                text += f" at {entry['time']}"
        return text

    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who(e)}",
               "field": path_text(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who(entry)}: {path_text(path)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(who(entry), []).append(path_text(path))
        lines = []
        for name in sorted(by_manager):
            lines.append(f"conflicts with {name}:")
            lines.extend(f"- {p}" for p in by_manager[name])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, {"causes": causes})


def apply(current: Obj | None, config: Obj, manager: str, rt: ResourceType, *,
          force: bool = False, subresource: str = "") -> tuple[Obj, list[Obj]]:
    """The object after applying `config` as `manager`, and its managedFields."""
    applied = flatten(config, rt, subresource)
    wanted = set(applied)
    if current is None:
        return copy.deepcopy(config), [_entry(manager, "Apply", rt, wanted, subresource)]
    entries = _entries(current)
    sets = [from_fields_v1(e.get("fieldsV1")) for e in entries]
    live = flatten(current, rt, subresource)
    own = next((i for i, e in enumerate(entries) if _same(e, manager, "Apply", subresource)),
               None)
    clashing = [sorted(p for p in paths & wanted if p in live and live[p] != applied[p])
                if i != own else [] for i, paths in enumerate(sets)]
    conflicts = [(entries[i], p) for i, paths in enumerate(clashing) for p in paths]
    if conflicts and not force:
        # kubectl's first server-side apply after client-side ones may take over what its
        # last-applied annotation covers (upstream's lastAppliedManager).
        allowed = _last_applied_fields(current, rt) if manager == "kubectl" else set()
        remaining = [(e, p) for e, p in conflicts if p not in allowed]
        if remaining:
            raise _conflict_error(remaining)
    for i, paths in enumerate(clashing):
        sets[i] -= set(paths)
    previous = sets[own] if own is not None else set()
    others = set().union(*(s for i, s in enumerate(sets) if i != own))
    merged = copy.deepcopy(current)
    for path in sorted(previous - wanted - others, key=len, reverse=True):
        _remove(merged, path)
    top = _top_schema(rt)
    for key, raw in config.items():
        value = _user_metadata(raw) if key == "metadata" else raw
        merged[key] = _merge(merged.get(key), value, schema.prop(top, key))
    if own is None:
        entries.append(_entry(manager, "Apply", rt, wanted, subresource))
        sets.append(wanted)
    else:
        if previous != wanted or merged != current:  # a no-op apply keeps its timestamp
            entries[own]["time"] = _now()
        sets[own] = wanted
        entries[own]["apiVersion"] = rt.api_version
    return merged, _with_sets(entries, sets)


def _last_applied_fields(obj: Obj, rt: ResourceType) -> set[Path]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    text = annotations.get("kubectl.kubernetes.io/last-applied-configuration")
    try:
        config = json.loads(text) if text else None
    except ValueError:
        return set()
    return set(flatten(config, rt)) if isinstance(config, dict) else set()


def _merge(live: Any, applied: Any, field: schema.Schema | None) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and not _atomic_map(field):
        out = dict(live)
        is_map = schema.is_map(field)
        for key, value in applied.items():
            child = schema.values(field) if is_map else schema.prop(field, key)
            out[key] = _merge(live.get(key), value, child)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = _list_type(field)
        if kind == "map" and keys:
            out_list = list(live)
            index = {_element_key(e, keys): i for i, e in enumerate(out_list)}
            for element in applied:
                key = _element_key(element, keys)
                if key in index:
                    out_list[index[key]] = _merge(out_list[index[key]], element,
                                                  schema.items(field))
                else:
                    out_list.append(copy.deepcopy(element))
            return out_list
        if kind == "set":
            return list(live) + [copy.deepcopy(v) for v in applied if v not in live]
    return copy.deepcopy(applied)


def _remove(obj: Obj, path: Path) -> None:
    """Delete the field or list element at `path` (if present)."""
    parent: Any = obj
    for element in path[:-1]:
        parent = _child(parent, element)
        if parent is None:
            return
    last = path[-1]
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)
    elif isinstance(parent, list):
        parent[:] = [e for e in parent if not _matches(e, last)]


def _child(node: Any, element: str) -> Any:
    if isinstance(node, dict) and element.startswith("f:"):
        return node.get(element[2:])
    if isinstance(node, list):
        return next((e for e in node if _matches(e, element)), None)
    return None


def _matches(element: Any, key: str) -> bool:
    kind, _, rest = key.partition(":")
    if kind == "v":
        return bool(json.dumps(element, separators=(",", ":")) == rest)
    if kind == "k" and isinstance(element, dict):
        want = json.loads(rest)
        return all(element.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in want.items())
    return False
