"""`/openapi/v2`: the Swagger 2.0 document, converted from the same per-group-version
OpenAPI 3 documents `/openapi/v3` serves (so both always describe the same API).

The conversion is the mechanical one upstream's two documents differ by: one document
for all groups; `components.schemas` -> `definitions` (refs rewritten); parameters carry
their type inline instead of a `schema`; a `requestBody` becomes an `in: body` parameter;
response `content` collapses to one `schema`, with media types in `consumes`/`produces`.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

from tp_sandbox.apiserver import openapi, schema
from tp_sandbox.apiserver.resources import RESOURCES

Doc = dict[str, Any]
_V2_REF = "#/definitions/"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _refs(node: Any) -> Any:
    """Rewrite OpenAPI 3 refs to Swagger 2 ones, recursively (returns a new tree)."""
    if isinstance(node, list):
        return [_refs(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _refs(v) for k, v in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith(schema.REF_PREFIX):
        out["$ref"] = _V2_REF + ref[len(schema.REF_PREFIX):]
    if "allOf" in out and len(out["allOf"]) == 1 and set(out) <= {"allOf", "description",
                                                                   "default"}:
        # Swagger 2 allows siblings of $ref (ignored); upstream's v2 has plain refs.
        out = {**out.pop("allOf")[0], **out}
    return out


def _parameter(p: Doc) -> Doc:
    out = {k: v for k, v in p.items() if k != "schema"}
    out.update({k: v for k, v in (p.get("schema") or {}).items()})
    return out


def _operation(op: Doc) -> Doc:
    out: Doc = {k: v for k, v in op.items()
                if k not in ("parameters", "requestBody", "responses")}
    params = [_parameter(p) for p in op.get("parameters") or []]
    body = op.get("requestBody")
    if body:
        content = body.get("content") or {}
        out["consumes"] = list(content)
        first: Doc = next(iter(content.values()), {})
        params.insert(0, {"name": "body", "in": "body", "required": bool(body.get("required")),
                          "schema": first.get("schema", {})})
    if params:
        out["parameters"] = params
    responses: Doc = {}
    produces: list[str] = []
    for code, resp in (op.get("responses") or {}).items():
        content = resp.get("content") or {}
        for media in content:
            if media not in produces:
                produces.append(media)
        entry: Doc = {"description": resp.get("description", "")}
        if content:
            entry["schema"] = next(iter(content.values())).get("schema", {})
        responses[code] = entry
    out["produces"] = produces
    out["schemes"] = ["https"]
    out["responses"] = responses
    return out


def _add(v3: Doc, paths: Doc, definitions: Doc) -> None:
    """Merge one group-version's OpenAPI 3 document into the Swagger 2 parts."""
    definitions.update(v3["components"]["schemas"])
    for path, item in v3["paths"].items():
        converted: Doc = {}
        for key, value in item.items():
            if key in _METHODS:
                converted[key] = _operation(value)
            elif key == "parameters":
                converted[key] = [_parameter(p) for p in value]
            else:
                converted[key] = value
        paths[path] = converted


@cache
def _builtin() -> tuple[Doc, Doc]:
    """Paths and definitions of the built-in group-versions (built once)."""
    paths: Doc = {}
    definitions: Doc = {}
    for group, version in sorted({(r.group, r.version) for r in RESOURCES}):
        v3 = openapi.v3_document(group, version)
        if v3 is not None:
            _add(v3, paths, definitions)
    return paths, definitions


def document_bytes() -> bytes:
    """The serialised Swagger 2.0 document: the built-in part and the custom resources'
    (from their CRDs, as upstream publishes them), re-serialised only when those change."""
    custom = [openapi.v3_document(g, v) for g, v in openapi.custom_group_versions()]
    return _serialise(json.dumps(custom, sort_keys=True))


@lru_cache(maxsize=4)
def _serialise(custom_json: str) -> bytes:
    built_paths, built_definitions = _builtin()
    paths, definitions = dict(built_paths), dict(built_definitions)
    for v3 in json.loads(custom_json):
        if v3 is not None:
            _add(v3, paths, definitions)
    quantity = definitions.get(schema.QUANTITY)
    if quantity is not None and "oneOf" in quantity:
        # Swagger 2 has no oneOf: upstream's v2 document calls a Quantity a string.
        definitions[schema.QUANTITY] = {**{k: v for k, v in quantity.items() if k != "oneOf"},
                                        "type": "string"}
    doc = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": openapi.KUBERNETES_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": dict(sorted(definitions.items())),
        "securityDefinitions": {"BearerToken": {
            "type": "apiKey", "name": "authorization", "in": "header",
            "description": "Bearer Token authentication"}},
        "security": [{"BearerToken": []}],
    }
    return json.dumps(_refs(doc), sort_keys=True).encode()
