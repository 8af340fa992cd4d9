"""PATCH bodies applied to stored objects: JSON patch, merge patch, strategic merge patch.

`apply_patch(current, body, content_type, resource)` returns the patched object (a new dict;
`current` is left untouched). The strategic merge patch reads its list semantics from the
Kubernetes schema (`x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` on each
field), never from a hand-written table, so every built-in type merges as upstream does:
lists with strategy `merge` merge by their merge key (primitive lists: union), other lists
are replaced; maps merge key by key and `null` deletes a key. Directives: `$patch`
(replace / delete / merge), `$retainKeys`, `$deleteFromPrimitiveList/<field>`,
`$setElementOrder/<field>`.

Server-side apply (`application/apply-patch+yaml`) is `ssa`'s: the handlers route it there.

Errors (from `errors`, worded as a real API server's):
    BadRequest            the body does not decode, or a directive is malformed
    Invalid               a JSON patch operation fails, or a list item lacks its merge key
    UnsupportedMediaType  any other content type
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from . import errors, schema
from .resources import ResourceType
from .schema import Schema

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SUPPORTED = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"
_ELEMENT_ORDER = "$setElementOrder/"


def apply_patch(current: dict[str, Any], body: bytes, content_type: str,
                resource: ResourceType) -> dict[str, Any]:
    """Apply a PATCH body of the given media type to `current`; return the result."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        result = _json_patch(current, body)
    elif media == MERGE_PATCH:
        result = merge_patch(copy.deepcopy(current), _decode_object(body))
    elif media == STRATEGIC_MERGE_PATCH and resource.custom is not None:
        # as upstream: custom resources have no patch strategies to merge by
        raise errors.UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml")
    elif media == STRATEGIC_MERGE_PATCH:
        top = schema.for_kind(resource.definition_name)
        result = strategic_merge(copy.deepcopy(current), _decode_object(body), top)
    else:
        raise errors.UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(SUPPORTED))
    if not isinstance(result, dict):
        raise errors.BadRequest(
            f"the patched object is a JSON {type(result).__name__}, not an object: "
            "send a patch that keeps the object a JSON object")
    return result


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (UnicodeDecodeError, ValueError) as e:
        raise errors.BadRequest(f"error decoding patch: {e}") from None


def _decode_object(body: bytes) -> Any:
    patch = _decode(body)
    if patch is None:
        raise errors.BadRequest("error decoding patch: the patch is empty (null)")
    return patch


def _json_patch(current: dict[str, Any], body: bytes) -> Any:
    ops = _decode(body)
    if not isinstance(ops, list):
        raise errors.BadRequest(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch "
            "(a JSON patch is a list of operations)")
    try:
        patch = jsonpatch.JsonPatch(ops)
        result: Any = patch.apply(current)  # jsonpatch copies; `current` stays as it was
        return result
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError,
            TypeError, ValueError, IndexError) as e:
        raise _unprocessable(str(e) or type(e).__name__) from None


def _unprocessable(detail: str) -> errors.Invalid:
    # What `NewGenericServerResponse(422, ...)` renders: a fixed message, the reason as cause.
    return errors.Invalid(
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]})


# ---------------------------------------------------------------- merge patch (RFC 7386)

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


# ---------------------------------------------------------------- strategic merge patch

def strategic_merge(original: Any, patch: Any, field: Schema | None) -> Any:
    """Merge `patch` into `original` (modified in place where possible) per `field`'s schema."""
    if isinstance(patch, dict) and isinstance(original, dict):
        return _merge_map(original, patch, field)
    if isinstance(patch, dict):
        return _merge_map({}, patch, field)
    if isinstance(patch, list):
        strategies, key = schema.patch_meta(field)
        base = original if isinstance(original, list) else []
        if "merge" in strategies:
            return _merge_list(base, patch, schema.items(field), key, None)
        return _replace_list(patch, schema.items(field))
    return copy.deepcopy(patch)


def _sub_schema(field: Schema | None, key: str) -> Schema | None:
    if field is None:
        return None
    if schema.is_map(field):
        return schema.values(field)
    return schema.prop(field, key)


def _merge_map(original: dict[str, Any], patch: dict[str, Any],
               field: Schema | None) -> dict[str, Any]:
    patch = dict(patch)
    directive = patch.pop(_DIRECTIVE, None)
    if directive is not None:
        if directive == "replace":
            return _merge_map({}, patch, field)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise errors.BadRequest(f"unknown patch type: {directive} in map: {patch}")
    retain = patch.pop(_RETAIN_KEYS, None)
    if retain is not None:
        _retain_keys(original, patch, retain)

    orders: dict[str, list[Any]] = {}
    for key in list(patch):
        if key.startswith(_ELEMENT_ORDER):
            order = patch.pop(key)
            if not isinstance(order, list):
                raise errors.BadRequest(
                    f"invalid patch: {key} must be a list, got {type(order).__name__}")
            orders[key[len(_ELEMENT_ORDER):]] = order
        elif key.startswith(_DELETE_PRIMITIVES):
            gone = patch.pop(key)
            name = key[len(_DELETE_PRIMITIVES):]
            if not isinstance(gone, list):
                raise errors.BadRequest(
                    f"invalid patch: {key} must be a list of values to delete")
            if isinstance(original.get(name), list):
                original[name] = [v for v in original[name] if v not in gone]

    for key, value in patch.items():
        sub = _sub_schema(field, key)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, sub)
            if isinstance(value.get(_DIRECTIVE), str) and value[_DIRECTIVE] == "delete":
                original.pop(key, None)
                continue
            original[key] = merged
        elif isinstance(value, list):
            strategies, merge_key = schema.patch_meta(sub)
            if "merge" in strategies:
                base = current if isinstance(current, list) else []
                original[key] = _merge_list(base, value, schema.items(sub), merge_key,
                                            orders.pop(key, None))
            else:
                original[key] = _replace_list(value, schema.items(sub))
        else:
            original[key] = copy.deepcopy(value)

    for name, order in orders.items():
        # An order for a list the patch did not touch: reorder what is there.
        if isinstance(original.get(name), list):
            _strategies, merge_key = schema.patch_meta(_sub_schema(field, name))
            original[name] = _apply_order(original[name], order, merge_key)
    return original


def _retain_keys(original: dict[str, Any], patch: dict[str, Any], retain: Any) -> None:
    if not isinstance(retain, list):
        raise errors.BadRequest(f"invalid patch: {_RETAIN_KEYS} must be a list of field names")
    for key in patch:
        if not key.startswith("$") and key not in retain:
            raise errors.BadRequest(
                f"The patch content doesn't match retainKeys list: {retain}; "
                f"add {key!r} to {_RETAIN_KEYS}")
    for key in list(original):
        if key not in retain:
            del original[key]


def _replace_list(patch: list[Any], item: Schema | None) -> list[Any]:
    out: list[Any] = []
    for element in patch:
        if isinstance(element, dict):
            if element.get(_DIRECTIVE) in ("delete", "replace") and len(element) == 1:
                continue
            out.append(_merge_map({}, element, item))
        else:
            out.append(copy.deepcopy(element))
    return out


def _merge_list(original: list[Any], patch: list[Any], item: Schema | None,
                merge_key: str | None, order: list[Any] | None) -> list[Any]:
    if any(isinstance(e, dict) and e.get(_DIRECTIVE) == "replace" for e in patch):
        rest = [e for e in patch if not (isinstance(e, dict) and e.get(_DIRECTIVE) == "replace")]
        result = _replace_list(rest, item)
        return _apply_order(result, order, merge_key) if order else result

    if not any(isinstance(e, dict) for e in patch + original) or merge_key is None:
        if any(isinstance(e, dict) for e in patch):
            # A list of objects with strategy merge but no key: upstream refuses it.
            raise errors.BadRequest(
                "strategic merge patch: a list of objects needs a patch merge key; "
                "use a JSON merge patch to replace the whole list")
        # Primitive list with strategy merge (e.g. finalizers): union, original order kept.
        result = list(original)
        for value in patch:
            if value not in result:
                result.append(copy.deepcopy(value))
        return _apply_order(result, order, None) if order else result

    result = list(original)
    for element in patch:
        if not isinstance(element, dict):
            raise errors.BadRequest(
                f"strategic merge patch: the list element {element!r} must be an object "
                f"with the merge key {merge_key!r}")
        if merge_key not in element:
            raise _unprocessable(
                f"map: {element} does not contain declared merge key: {merge_key}")
        wanted = element[merge_key]
        index = next((i for i, e in enumerate(result)
                      if isinstance(e, dict) and e.get(merge_key) == wanted), None)
        directive = element.get(_DIRECTIVE)
        if directive == "delete":
            result = [e for e in result
                      if not (isinstance(e, dict) and e.get(merge_key) == wanted)]
            continue
        if index is None:
            result.append(_merge_map({}, element, item))
        else:
            result[index] = _merge_map(result[index], element, item)
    return _apply_order(result, order, merge_key) if order else result


def _apply_order(items_: list[Any], order: list[Any] | None, merge_key: str | None
                 ) -> list[Any]:
    """`$setElementOrder`: items named in `order` take that order within the slots they
    occupy; items the order does not name (server-only) keep their places."""
    if not order:
        return items_

    def ident(element: Any) -> Any:
        if merge_key is not None and isinstance(element, dict):
            return json.dumps(element.get(merge_key), sort_keys=True)
        return json.dumps(element, sort_keys=True)

    rank = {ident(o): i for i, o in enumerate(order)}
    slots = [i for i, e in enumerate(items_) if ident(e) in rank]
    ordered = sorted((items_[i] for i in slots), key=lambda e: rank[ident(e)])
    out = list(items_)
    for slot, element in zip(slots, ordered, strict=True):
        out[slot] = element
    return out
