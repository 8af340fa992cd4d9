"""Access to the schema-aware modules (defaults, validation, patch, openapi) written
alongside this server; each call goes through here so the handlers stay independent
of their internals. Minimal fallbacks keep the server usable while one is absent.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
from types import ModuleType
from typing import Any

import jsonpatch
import yaml

from tp_sandbox.apiserver import errors
from tp_sandbox.apiserver.resources import ResourceType

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"tp_sandbox.apiserver.{name}")
    except ImportError as exc:
        if exc.name != f"tp_sandbox.apiserver.{name}":
            raise
        return None


def apply_defaults(obj: Obj, rt: ResourceType) -> None:
    mod = _module("defaults")
    if mod is not None:
        mod.apply_defaults(obj, rt)


def validate(obj: Obj, rt: ResourceType, old: Obj | None, field_validation: str) -> list[str]:
    mod = _module("validation")
    if mod is None:
        return []
    return list(mod.validate(obj, rt, old=old, field_validation=field_validation))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def apply_patch(current: Obj, body: bytes, content_type: str, rt: ResourceType) -> Obj:
    mod = _module("patch")
    if mod is not None:
        result: Obj = mod.apply_patch(current, body, content_type, rt)
        return result
    try:
        if content_type == "application/json-patch+json":
            out: Obj = jsonpatch.apply_patch(copy.deepcopy(current), json.loads(body))
            return out
        if content_type in ("application/merge-patch+json",
                            "application/strategic-merge-patch+json"):
            return dict(_merge(current, json.loads(body)))
        if content_type == "application/apply-patch+yaml":
            return dict(_merge(current, yaml.safe_load(body)))
    except (ValueError, jsonpatch.JsonPatchException, yaml.YAMLError) as exc:
        raise errors.BadRequest(f"invalid patch: {exc}") from exc
    raise errors.UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, "
        f"application/apply-patch+yaml, application/strategic-merge-patch+json "
        f"(got {content_type})")


def openapi_index() -> Obj | None:
    mod = _module("openapi")
    return None if mod is None else dict(mod.v3_index())


def openapi_document(group: str, version: str) -> Obj | None:
    mod = _module("openapi")
    if mod is None:
        return None
    doc = mod.v3_document(group, version)
    return None if doc is None else dict(doc)
