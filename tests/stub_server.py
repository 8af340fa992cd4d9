"""A tiny HTTP API server for kubectl: legacy discovery, our /openapi/v3 documents, and
create/get/patch of namespaced objects through defaults, validation and patch.

It exists so that the schema modules can be checked against real kubectl without the
sandbox's full API server.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from tp_sandbox.apiserver import defaults, errors, openapi, patch, validation
from tp_sandbox.apiserver.resources import RESOURCES, by_plural, groups


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(e: errors.ApiError) -> web.Response:
    return _json(e.status(), e.code)


def _resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        resources.append({"name": r.plural, "singularName": r.singular,
                          "namespaced": r.namespaced, "kind": r.kind, "verbs": list(r.verbs),
                          "shortNames": list(r.short_names)})
        for sub in r.subresources:
            if sub in ("status", "scale"):
                resources.append({"name": f"{r.plural}/{sub}", "singularName": "",
                                  "namespaced": r.namespaced,
                                  "kind": "Scale" if sub == "scale" else r.kind,
                                  "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


class StubServer:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self.patches: list[tuple[str, Any]] = []  # (content type, body) of each PATCH
        self.app = web.Application(middlewares=[self._log])
        add = self.app.router.add_route
        add("GET", "/version", self._version)
        add("GET", "/api", self._api)
        add("GET", "/apis", self._apis)
        add("GET", "/api/{version}", self._resources)
        add("GET", "/apis/{group}/{version}", self._resources)
        add("GET", "/openapi/v3", self._index)
        add("GET", "/openapi/v3/{tail:.+}", self._document)
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            base = prefix + "/namespaces/{ns}/{plural}"
            add("POST", base, self._create)
            add("GET", base + "/{name}", self._get)
            add("PATCH", base + "/{name}", self._patch)

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        response: web.StreamResponse = await handler(request)
        return response

    async def _version(self, _: web.Request) -> web.Response:
        return _json({"major": "1", "minor": "37", "gitVersion": "v1.37.0",
                      "platform": "linux/amd64"})

    async def _api(self, _: web.Request) -> web.Response:
        return _json({"kind": "APIVersions", "versions": ["v1"],
                      "serverAddressByClientCIDRs": []})

    async def _apis(self, _: web.Request) -> web.Response:
        out = []
        for group, versions in groups().items():
            if not group:
                continue
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            out.append({"name": group, "versions": vs, "preferredVersion": vs[0]})
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": out})

    async def _resources(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        return _json(_resource_list(group, request.match_info["version"]))

    async def _index(self, _: web.Request) -> web.Response:
        return _json(openapi.v3_index())

    async def _document(self, request: web.Request) -> web.Response:
        parts = request.match_info["tail"].split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        body = openapi.v3_document_bytes(group, version)
        if body is None:
            return _json({"kind": "Status", "code": 404}, 404)
        return web.Response(body=body, content_type="application/json")

    def _target(self, request: web.Request) -> Any:
        m = request.match_info
        r = by_plural(m.get("group", ""), m["version"], m["plural"])
        if r is None:
            raise errors.NotFound("the server could not find the requested resource")
        return r

    async def _create(self, request: web.Request) -> web.Response:
        try:
            r = self._target(request)
            obj = json.loads(await request.read())
            defaults.apply_defaults(obj, r)
            warnings = validation.validate(
                obj, r, old=None, field_validation=request.query.get("fieldValidation", ""))
            key = (r.plural, request.match_info["ns"], obj["metadata"]["name"])
            obj["metadata"].setdefault("namespace", key[1])
            if "dryRun" not in request.query:
                self.objects[key] = obj
            response = _json(obj, 201)
            for w in warnings:
                response.headers.add("Warning", f'299 - "{w}"')
            return response
        except errors.ApiError as e:
            return _error(e)

    async def _get(self, request: web.Request) -> web.Response:
        try:
            r = self._target(request)
            key = (r.plural, request.match_info["ns"], request.match_info["name"])
            if key not in self.objects:
                raise errors.NotFound.of(r.plural, r.group, key[2])
            return _json(self.objects[key])
        except errors.ApiError as e:
            return _error(e)

    async def _patch(self, request: web.Request) -> web.Response:
        try:
            r = self._target(request)
            key = (r.plural, request.match_info["ns"], request.match_info["name"])
            if key not in self.objects:
                raise errors.NotFound.of(r.plural, r.group, key[2])
            current = self.objects[key]
            body = await request.read()
            content_type = request.headers.get("Content-Type", "")
            self.patches.append((content_type, json.loads(body)))
            new = patch.apply_patch(current, body, content_type, r)
            defaults.apply_defaults(new, r)
            validation.validate(new, r, old=current,
                                field_validation=request.query.get("fieldValidation", ""))
            if "dryRun" not in request.query:
                self.objects[key] = new
            return _json(new)
        except errors.ApiError as e:
            return _error(e)
