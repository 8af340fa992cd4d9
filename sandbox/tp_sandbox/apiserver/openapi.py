"""The `/openapi/v3` documents of the sandbox API server, shaped like upstream's.

kubectl reads them: `GET /openapi/v3` gives the index (`paths` -> `serverRelativeURL` with a
content hash); each group-version document declares the operations of the resources we
serve (each with `x-kubernetes-group-version-kind` and `x-kubernetes-action`) and carries
in `components.schemas` the real Kubernetes definitions they need (see `schema`). Two
details matter to kubectl:

- the `fieldValidation` query parameter on PATCH (and POST/PUT) operations is how kubectl
  learns that the server validates fields, so that it sends `?fieldValidation=Strict`;
- the patch metadata (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) in the
  schemas is what `kubectl apply` uses to compute its 3-way strategic merge patch.

Documents of built-in group-versions are built once and cached; the returned dicts are
shared and must not be modified (serve `v3_document_bytes` when possible: it is
pre-serialised). A custom resource's group-version is published from its CRD's
`openAPIV3Schema` (as upstream's CRD OpenAPI controller does, so `kubectl explain` works
for it), built on each request because the CRD can change.

Errors: none of its own; `schema.SchemaError` if the definitions cannot be loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from typing import Any

from . import schema
from .resources import RESOURCES, ResourceType, groups, served

Doc = dict[str, Any]

KUBERNETES_VERSION = "v1.37.0"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_SCALE_GVK = {"group": "autoscaling", "kind": "Scale", "version": "v1"}
_RESPONSE_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
                "application/merge-patch+json", "application/strategic-merge-patch+json")


def gv_path(group: str, version: str) -> str:
    """The index key of a group-version: `api/v1` or `apis/<group>/<version>`."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def v3_index() -> Doc:
    """The `/openapi/v3` discovery document."""
    paths: Doc = {}
    for group, versions in sorted(groups().items()):
        for version in versions:
            digest = v3_hash(group, version)
            if digest is None:
                continue
            key = gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def v3_document(group: str, version: str) -> Doc | None:
    """The OpenAPI 3.0 document of a served group-version, or None if not served (404)."""
    return _document(group, version) or _custom_document(group, version)


def v3_document_bytes(group: str, version: str) -> bytes | None:
    """`v3_document` serialised (what `?hash=` identifies), or None if not served."""
    body = _document_bytes(group, version)
    if body is None:
        doc = _custom_document(group, version)
        body = None if doc is None else json.dumps(doc, sort_keys=True).encode()
    return body


def v3_hash(group: str, version: str) -> str | None:
    """The content hash the index advertises (upstream: SHA-512, upper-case hex)."""
    if _document(group, version) is not None:
        return _hash(group, version)
    body = v3_document_bytes(group, version)
    return None if body is None else hashlib.sha512(body).hexdigest().upper()


def custom_group_versions() -> list[tuple[str, str]]:
    """The group-versions served by custom resources only, now."""
    return sorted({(r.group, r.version) for r in served() if r.custom is not None
                   and _document(r.group, r.version) is None})


def _custom_document(group: str, version: str) -> Doc | None:
    types = [r for r in served() if r.custom is not None and (r.group, r.version) == (group,
                                                                                   version)]
    if not types:
        return None
    names = [_META + n for n in ("APIResourceList", "DeleteOptions", "Status", "Patch",
                                 "WatchEvent", "ObjectMeta", "ListMeta")]
    if any("scale" in r.subresources for r in types):
        names.append(_SCALE)
    schemas = schema.component_schemas(names)
    paths: Doc = {f"/{gv_path(group, version)}/": _resources_path(group, version)}
    for r in types:
        schemas.update(_custom_schemas(r))
        paths.update(_resource_paths(r))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": {"BearerToken": {
            "type": "apiKey", "name": "authorization", "in": "header",
            "description": "Bearer Token authentication"}}},
    }


def _custom_schemas(r: ResourceType) -> Doc:
    """The kind's schema (its CRD's, with apiVersion, kind and metadata as upstream adds
    them) and its list's."""
    typed = schema.definition("io.k8s.api.core.v1.ConfigMap")["properties"]
    listed = schema.definition("io.k8s.api.core.v1.ConfigMapList")["properties"]
    own = copy.deepcopy((r.custom or {}).get("schema") or {})
    own.setdefault("type", "object")
    own["properties"] = {"apiVersion": typed["apiVersion"], "kind": typed["kind"],
                         "metadata": typed["metadata"], **(own.get("properties") or {})}
    own["x-kubernetes-group-version-kind"] = [{"group": r.group, "kind": r.kind,
                                               "version": r.version}]
    name = r.definition_name
    return {name: own, name + "List": {
        "description": f"{r.kind}List is a list of {r.kind}",
        "type": "object", "required": ["items"],
        "properties": {"apiVersion": typed["apiVersion"],
                       "items": {"type": "array", "items": _ref(name),
                                 "description": f"List of {r.plural}. More info: "
                                 "https://git.k8s.io/community/contributors/devel/"
                                 "sig-architecture/api-conventions.md"},
                       "kind": typed["kind"], "metadata": listed["metadata"]},
        "x-kubernetes-group-version-kind": [{"group": r.group, "kind": r.list_kind,
                                             "version": r.version}]}}


@cache
def _document_bytes(group: str, version: str) -> bytes | None:
    doc = _document(group, version)
    return None if doc is None else json.dumps(doc, sort_keys=True).encode()


@cache
def _hash(group: str, version: str) -> str:
    body = _document_bytes(group, version) or b""
    return hashlib.sha512(body).hexdigest().upper()


@cache
def _document(group: str, version: str) -> Doc | None:
    served = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not served:
        return None
    names = [_META + n for n in ("APIResourceList", "DeleteOptions", "Status", "Patch",
                                 "WatchEvent")]
    paths: Doc = {f"/{gv_path(group, version)}/": _resources_path(group, version)}
    for r in served:
        names += [r.definition_name, r.definition_name + "List"]
        if "scale" in r.subresources:
            names.append(_SCALE)
        paths.update(_resource_paths(r))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schema.component_schemas(names),
            "securitySchemes": {"BearerToken": {
                "type": "apiKey", "name": "authorization", "in": "header",
                "description": "Bearer Token authentication"}},
        },
    }


# ---------------------------------------------------------------- operations

def _tag(group: str, version: str) -> str:
    if not group:
        return f"core_{version}"
    parts = group.removesuffix(".k8s.io").split(".")
    return parts[0] + "".join(p.capitalize() for p in parts[1:]) + f"_{version}"


def _op_prefix(group: str, version: str) -> str:
    tag = _tag(group, version)
    camel = tag[0].upper() + tag[1:]
    return camel.replace("_", "").replace(version, version.capitalize())


def _ref(name: str) -> Doc:
    return {"$ref": schema.REF_PREFIX + name}


def _content(name: str, types: tuple[str, ...] = _RESPONSE_TYPES) -> Doc:
    return {t: {"schema": _ref(name)} for t in types}


def _responses(name: str, *codes: str) -> Doc:
    words = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: Doc = {c: {"description": words[c], "content": _content(name)} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _query(name: str, description: str, kind: str = "string") -> Doc:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": kind, "uniqueItems": True}}


def _path_param(name: str, description: str) -> Doc:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be "
                  "persisted. Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or "
                        "entity that is making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "fieldValidation instructs the server on how to handle objects in the "
    "request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
    "- Ignore - Warn (the default) - Strict: fail the request with a BadRequest error if any "
    "unknown fields would be dropped from the object.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type "
           "\"BOOKMARK\".", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from "
           "the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their "
           "fields. Defaults to everything."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their "
           "labels. Defaults to everything."),
    _query("limit", "limit is a maximum number of responses to return for a list call.",
           "integer"),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a "
           "request may be served from."),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is "
           "applied to list calls."),
    _query("sendInitialEvents", "`sendInitialEvents=true` may be set together with "
           "`watch=true`.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream "
           "of add, update, and remove notifications.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.",
           "integer"),
    _query("propagationPolicy", "Whether and how garbage collection will be performed: "
           "'Orphan', 'Background' or 'Foreground'."),
]


def _operation(r: ResourceType, action: str, op_id: str, *, description: str,
               body: str | None = None, response: str, codes: tuple[str, ...] = ("200",),
               params: list[Doc] | None = None, gvk: dict[str, str] | None = None,
               body_types: tuple[str, ...] = ("*/*",)) -> Doc:
    op: Doc = {
        "description": description,
        "operationId": op_id,
        "tags": [_tag(r.group, r.version)],
        "responses": _responses(response, *codes),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk or {
            "group": r.group, "kind": r.kind, "version": r.version},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"content": {t: {"schema": _ref(body)} for t in body_types},
                             "required": True}
    return op


def _resource_paths(r: ResourceType) -> Doc:
    gv = "/" + gv_path(r.group, r.version)
    prefix = _op_prefix(r.group, r.version)
    scope = "Namespaced" if r.namespaced else ""
    base = f"{gv}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{gv}/{r.plural}"
    ns_param = [_path_param("namespace", "object name and auth scope, such as for teams and "
                                         "projects")] if r.namespaced else []
    name_param = [_path_param("name", f"name of the {r.kind}")]
    defn, list_defn = r.definition_name, r.definition_name + "List"
    # Custom resources take no strategic merge patch: kubectl reads this list to choose.
    patch_types = _PATCH_TYPES if r.custom is None else tuple(
        t for t in _PATCH_TYPES if t != "application/strategic-merge-patch+json")
    verbs = set(r.verbs)
    write_params = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: Doc = {}

    collection: Doc = {"parameters": [*ns_param, _PRETTY]}
    if "list" in verbs:
        collection["get"] = _operation(r, "list", f"list{prefix}{scope}{r.kind}",
            description=f"list or watch objects of kind {r.kind}", response=list_defn,
            params=_LIST_PARAMS)
    if "create" in verbs:
        collection["post"] = _operation(r, "post", f"create{prefix}{scope}{r.kind}",
            description=f"create a {r.kind}", body=defn, response=defn,
            codes=("200", "201", "202"), params=write_params)
    if "deletecollection" in verbs:
        collection["delete"] = _operation(
            r, "deletecollection", f"delete{prefix}Collection{scope}{r.kind}",
            description=f"delete collection of {r.kind}", body=_META + "DeleteOptions",
            response=_META + "Status", params=_DELETE_PARAMS + _LIST_PARAMS)
    paths[base] = collection

    item: Doc = {"parameters": [*name_param, *ns_param, _PRETTY]}
    if "get" in verbs:
        item["get"] = _operation(r, "get", f"read{prefix}{scope}{r.kind}",
                                 description=f"read the specified {r.kind}", response=defn)
    if "update" in verbs:
        item["put"] = _operation(r, "put", f"replace{prefix}{scope}{r.kind}",
                                 description=f"replace the specified {r.kind}", body=defn,
                                 response=defn, codes=("200", "201"), params=write_params)
    if "patch" in verbs:
        item["patch"] = _operation(r, "patch", f"patch{prefix}{scope}{r.kind}",
                                   description=f"partially update the specified {r.kind}",
                                   body=_META + "Patch", response=defn, codes=("200", "201"),
                                   params=[*write_params, _FORCE], body_types=patch_types)
    if "delete" in verbs:
        item["delete"] = _operation(r, "delete", f"delete{prefix}{scope}{r.kind}",
                                    description=f"delete a {r.kind}",
                                    body=_META + "DeleteOptions", response=_META + "Status",
                                    codes=("200", "202"), params=_DELETE_PARAMS)
    paths[f"{base}/{{name}}"] = item

    if "watch" in verbs:
        watch_base = (f"{gv}/watch/namespaces/{{namespace}}/{r.plural}" if r.namespaced
                      else f"{gv}/watch/{r.plural}")
        paths[watch_base] = {
            "parameters": [*ns_param, _PRETTY, *_LIST_PARAMS],
            "get": _operation(r, "watchlist", f"watch{prefix}{scope}{r.kind}List",
                              description=f"watch individual changes to a list of {r.kind}. "
                              "deprecated: use the 'watch' parameter with a list operation "
                              "instead.", response=_META + "WatchEvent")}
        paths[f"{watch_base}/{{name}}"] = {
            "parameters": [*name_param, *ns_param, _PRETTY, *_LIST_PARAMS],
            "get": _operation(r, "watch", f"watch{prefix}{scope}{r.kind}",
                              description=f"watch changes to an object of kind {r.kind}. "
                              "deprecated: use the 'watch' parameter with a list operation "
                              "instead, filtered to a single item with the 'fieldSelector' "
                              "parameter.", response=_META + "WatchEvent")}
    if r.namespaced and "list" in verbs:
        paths[f"{gv}/{r.plural}"] = {
            "parameters": [_PRETTY, *_LIST_PARAMS],
            "get": _operation(r, "list", f"list{prefix}{r.kind}ForAllNamespaces",
                              description=f"list or watch objects of kind {r.kind}",
                              response=list_defn)}

    for sub in ("status", "scale"):
        if sub not in r.subresources:
            continue
        target = _SCALE if sub == "scale" else defn
        gvk = _SCALE_GVK if sub == "scale" else None
        word = sub.capitalize()
        paths[f"{base}/{{name}}/{sub}"] = {
            "parameters": [*name_param, *ns_param, _PRETTY],
            "get": _operation(r, "get", f"read{prefix}{scope}{r.kind}{word}",
                              description=f"read {sub} of the specified {r.kind}",
                              response=target, gvk=gvk),
            "put": _operation(r, "put", f"replace{prefix}{scope}{r.kind}{word}",
                              description=f"replace {sub} of the specified {r.kind}",
                              body=target, response=target, codes=("200", "201"),
                              params=write_params, gvk=gvk),
            "patch": _operation(r, "patch", f"patch{prefix}{scope}{r.kind}{word}",
                                description=f"partially update {sub} of the specified "
                                f"{r.kind}", body=_META + "Patch", response=target,
                                codes=("200", "201"), params=[*write_params, _FORCE], gvk=gvk,
                                body_types=patch_types),
        }
    return paths


def _resources_path(group: str, version: str) -> Doc:
    prefix = _op_prefix(group, version)
    return {"get": {
        "description": "get available resources",
        "operationId": f"get{prefix}APIResources",
        "tags": [_tag(group, version)],
        "responses": _responses(_META + "APIResourceList", "200"),
    }}
