"""The aiohttp application: authentication, routing to discovery / OpenAPI / resources,
Status rendering of errors, and the HTTPS listeners (host loopback and, with `@NETNS`,
a socket created inside a network namespace).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDict
from tp_protocol.settings import ApiServerSettings, get_settings

from tp_sandbox import netns
from tp_sandbox.apiserver import (
    aggregated,
    bootstrap,
    crd,
    discovery,
    errors,
    ext,
    health,
    negotiation,
    reviews,
    spdy,
    ssa,
    tables,
)
from tp_sandbox.apiserver.auth import Attributes, Authenticator, User, impersonate, is_public
from tp_sandbox.apiserver.handlers import Api, DeleteOptions, Target, decode_body, parse_target
from tp_sandbox.apiserver.relay import KubeletRelay, pick_container, require_node
from tp_sandbox.apiserver.store import Obj, Store

log = logging.getLogger(__name__)

_API_KEY = web.AppKey("api", Api)
_RELAY_KEY = web.AppKey("relay", KubeletRelay)
_USER_KEY = "tp_user"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=json.dumps(obj, separators=(",", ":")).encode() + b"\n",
                        status=status,
                        content_type="application/json")
    for w in warnings or []:
        # RFC 7234 quoted-string, as the real server's NewWarningHeader escapes it
        text = w.replace("\\", "\\\\").replace('"', '\\"')
        resp.headers.add("Warning", f'299 - "{text}"')
    return resp


def _aggregated(core: bool, version: str) -> web.Response:
    """The aggregated discovery list, in the media type the client negotiated (client-go
    reads the answer's Content-Type to tell it from the legacy document)."""
    body = json.dumps(aggregated.document(core, version), separators=(",", ":")).encode()
    return web.Response(body=body + b"\n", headers={
        "Content-Type": aggregated.content_type(version), "Vary": "Accept"})


@web.middleware
async def _status_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, run, and turn every failure into a Kubernetes Status."""
    try:
        if not is_public(request.path):
            api = request.app[_API_KEY]
            request[_USER_KEY] = impersonate(api.authz, api.authn.authenticate(
                request.headers.get("Authorization")), request.headers)
        return await handler(request)
    except errors.ApiError as exc:
        return _json(exc.status(), status=exc.code)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("internal error serving %s %s", request.method, request.path_qs)
        return _json(errors.ApiError(f"Internal error occurred: {exc}").status(), status=500)


def _query(request: web.Request) -> dict[str, str]:
    return {k: request.query.getone(k) for k in request.query}


def _dry_run(query: dict[str, str]) -> bool:
    value = query.get("dryRun")
    if value and value != "All":
        raise errors.BadRequest(f"dryRun: Unsupported value: \"{value}\": supported values: "
                                "\"All\"")
    return value == "All"


def _field_validation(query: dict[str, str]) -> str:
    value = query.get("fieldValidation", "Warn")
    if value not in ("Strict", "Warn", "Ignore"):
        raise errors.BadRequest(f"fieldValidation: Unsupported value: \"{value}\": supported "
                                "values: \"Ignore\", \"Strict\", \"Warn\"")
    return value


def _manager(request: web.Request, query: dict[str, str], apply: bool = False) -> str:
    """The field manager of a write: `?fieldManager=`, else (not for apply) the
    User-Agent's product, as upstream."""
    manager = query.get("fieldManager", "")
    if not manager and apply:
        raise errors.Invalid.of("PatchOptions", "meta.k8s.io", "", [{
            "reason": "FieldValueRequired", "field": "fieldManager",
            "message": "Required value: is required for apply patch"}])
    if len(manager) > ssa.MAX_MANAGER_LENGTH:
        raise errors.Invalid.of("PatchOptions", "meta.k8s.io", "", [{
            "reason": "FieldValueTooLong", "field": "fieldManager",
            "message": f"Too long: may not be more than {ssa.MAX_MANAGER_LENGTH} bytes"}])
    return manager or ssa.manager_from_user_agent(request.headers.get("User-Agent", ""))


def _force(query: dict[str, str]) -> bool:
    value = query.get("force", "false")
    if value not in ("true", "false", "1", "0", "True", "False"):
        raise errors.BadRequest(f'force: invalid value "{value}": use true or false')
    return value in ("true", "1", "True")


async def _delete_options(request: web.Request, query: dict[str, str]) -> DeleteOptions:
    body: Obj = {}
    raw = await request.read()
    if raw.strip():
        body = decode_body(raw, request.content_type)
    opts = DeleteOptions(dry_run=_dry_run(query) or body.get("dryRun") == ["All"])
    policy = query.get("propagationPolicy") or body.get("propagationPolicy")
    if body.get("orphanDependents") is True or query.get("orphanDependents") == "true":
        policy = policy or "Orphan"
    orphan = body.get("orphanDependents", query.get("orphanDependents"))
    if orphan is not None:
        opts.orphan_dependents = orphan in (True, "true")
    if policy:
        if policy not in ("Background", "Foreground", "Orphan"):
            raise errors.BadRequest(f'propagationPolicy: Unsupported value: "{policy}": '
                                    'supported values: "Background", "Foreground", "Orphan"')
        opts.propagation = policy
    grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
    if grace is not None:
        try:
            opts.grace = int(grace)
        except ValueError:
            raise errors.BadRequest(f"gracePeriodSeconds: invalid value {grace!r}: use a "
                                    "whole number of seconds") from None
    pre = body.get("preconditions") or {}
    opts.precondition_uid = pre.get("uid")
    opts.precondition_rv = pre.get("resourceVersion")
    return opts


class Router:
    """Maps a request to the Api's operations; one instance per application."""

    def __init__(self, api: Api, relay: KubeletRelay) -> None:
        self.api = api
        self.relay = relay

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/readyz", "/livez", "/healthz") or is_public(path):
            if path == "/version":
                return _json(discovery.version())
            return health.answer(path, request, self.api.stopping.is_set)
        user: User = request[_USER_KEY]
        segs = path.split("/")
        if request.method == "POST" and len(segs) == 6 and segs[1:4] == ["api", "v1",
                                                                        "namespaces"] \
                and segs[5] == "bindings":
            return await self._legacy_binding(request, user, segs[4])
        review = reviews.match(path) if request.method == "POST" else None
        if review is not None:
            return await self._review(request, user, *review)
        target = parse_target(path)
        if target is None:
            return await self._non_resource(request, user, path)
        query = _query(request)
        verb = target.verb(request.method, query)
        if target.rt.namespaced and not target.namespace and verb not in ("list", "watch"):
            raise errors.NotFound("the server could not find the requested resource", {})
        if verb not in target.rt.verbs and not target.sub:
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource",
                {"group": target.rt.group, "kind": target.rt.plural})
        self.api.authorize(user, target, verb)
        if target.sub:
            return await self._subresource(request, target, query)
        return await self._resource(request, target, verb, query)

    async def _review(self, request: web.Request, user: User, review: reviews.Review,
                      namespace: str) -> web.StreamResponse:
        """TokenReview, SubjectAccessReview and friends (see `reviews`)."""
        need = reviews.required(review, namespace)
        if need is not None:
            self.api.authz.check(user, need)
        body = decode_body(await request.read(), request.content_type)
        return _json(reviews.answer(review, namespace, body, user, authn=self.api.authn,
                                    authz=self.api.authz), 201)

    async def _legacy_binding(self, request: web.Request, user: User, namespace: str
                              ) -> web.StreamResponse:
        """POST /api/v1/namespaces/NS/bindings (the official client's create_namespaced_
        binding), the older spelling of pods/NAME/binding."""
        self.api.authz.check(user, Attributes("create", "", "bindings", "", namespace))
        body = decode_body(await request.read(), request.content_type)
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            raise errors.BadRequest("binding metadata.name is required: name the pod")
        return _json(self.api.bind(namespace, name, body, _dry_run(_query(request))), 201)

    async def _non_resource(self, request: web.Request, user: User, path: str
                            ) -> web.StreamResponse:
        self.api.authz.check(user, Attributes(_method_verb(request.method), path=path))
        segs = [s for s in path.split("/") if s]
        doc: Obj | None = None
        if request.method == "GET":
            aggregated_version = (aggregated.negotiate(request.headers.get("Accept", ""))
                                  if segs in (["api"], ["apis"]) else None)
            if aggregated_version is not None:
                return _aggregated(segs == ["api"], aggregated_version)
            if segs == ["api"]:
                doc = discovery.api_versions(request.host)
            elif segs == ["apis"]:
                doc = discovery.api_group_list()
            elif len(segs) == 2 and segs[0] == "api":
                doc = discovery.resource_list("", segs[1])
            elif len(segs) == 2 and segs[0] == "apis":
                doc = discovery.api_group(segs[1])
            elif len(segs) == 3 and segs[0] == "apis":
                doc = discovery.resource_list(segs[1], segs[2])
            elif segs == ["openapi", "v2"]:
                proto = ext.openapi_v2_protobuf(request.headers.get("Accept", ""))
                if proto is not None:
                    return web.Response(body=proto[0], headers={"Content-Type": proto[1]})
                return web.Response(body=ext.openapi_v2_document(),
                                    content_type="application/json")
            elif segs == ["openapi", "v3"]:
                doc = ext.openapi_index()
            elif segs[:2] == ["openapi", "v3"] and len(segs) in (4, 5):
                group, version = ("", segs[3]) if segs[2] == "api" else (segs[3], segs[-1])
                if (segs[2] == "api" and len(segs) == 4) or (segs[2] == "apis"
                                                             and len(segs) == 5):
                    raw = ext.openapi_document(group, version)
                    if raw is not None:
                        # Addressed by content hash: clients may cache it for good.
                        cache = ("public, immutable" if "hash" in request.query
                                 else "no-cache, private")
                        return web.Response(body=raw, content_type="application/json",
                                            headers={"Cache-Control": cache})
        if doc is None and segs and segs[0] in ("api", "apis"):
            raise errors.NotFound("the server could not find the requested resource", {})
        if doc is None:
            return web.Response(status=404, text="404 page not found\n")
        return _json(doc)

    async def _resource(self, request: web.Request, t: Target, verb: str,
                        query: dict[str, str]) -> web.StreamResponse:
        api, rt = self.api, t.rt
        ns = t.namespace if rt.namespaced else ""
        accept = request.headers.get("Accept", "")
        include = query.get("includeObject", "Metadata")
        if verb == "watch":
            return await api.watch(request, rt, ns, query, t.name)
        if verb == "get" and _true(query.get("watch")):
            return await api.watch(request, rt, ns, query, t.name)
        if verb == "list":
            items, meta = api.list(rt, ns, query)
            if tables.wants_table(accept):
                return _json(tables.table(rt, items, meta["resourceVersion"], include,
                                          list_meta={k: v for k, v in meta.items()
                                                     if k != "resourceVersion"}))
            return _json({"kind": rt.list_kind, "apiVersion": rt.api_version,
                          "metadata": meta, "items": items})
        if verb == "get":
            obj = api.require(rt, ns, t.name)
            if tables.wants_table(accept):
                return _json(tables.table(rt, [obj], obj["metadata"]["resourceVersion"],
                                          include))
            return _json(obj)
        if verb == "create":
            if t.name:
                raise errors.MethodNotAllowed(
                    "the server does not allow this method on the requested resource")
            body = decode_body(await request.read(), request.content_type)
            obj, warnings = api.create(rt, ns, body, dry_run=_dry_run(query),
                                       field_validation=_field_validation(query),
                                       manager=_manager(request, query))
            return _json(obj, 201, warnings)
        if verb == "update":
            body = decode_body(await request.read(), request.content_type)
            obj, warnings = api.update(rt, ns, t.name, body, dry_run=_dry_run(query),
                                       field_validation=_field_validation(query),
                                       manager=_manager(request, query))
            return _json(obj, 200, warnings)
        if verb == "patch" and request.content_type == ssa.APPLY_PATCH:
            obj, warnings, created = api.apply(
                rt, ns, t.name, await request.read(), manager=_manager(request, query, True),
                force=_force(query), dry_run=_dry_run(query),
                field_validation=_field_validation(query))
            return _json(obj, 201 if created else 200, warnings)
        if verb == "patch":
            if "force" in query:
                raise errors.Invalid.of("PatchOptions", "meta.k8s.io", "", [{
                    "reason": "FieldValueForbidden", "field": "force",
                    "message": "Forbidden: may not be specified for non-apply patch"}])
            obj, warnings = api.patch(rt, ns, t.name, await request.read(),
                                      request.content_type, dry_run=_dry_run(query),
                                      field_validation=_field_validation(query),
                                      manager=_manager(request, query))
            return _json(obj, 200, warnings)
        if verb == "delete":
            opts = await _delete_options(request, query)
            obj, now = api.delete(rt, ns, t.name, opts)
            # custom resources answer the object, as the CRD handler's store does
            if now and rt.kind not in RETURNS_DELETED_OBJECT and rt.custom is None:
                return _json(_status_success(rt, obj))
            # A pending deletion answers the object; 202 only for orphanDependents=false.
            accepted = not now and opts.orphan_dependents is False
            return _json(obj, 202 if accepted else 200)
        if verb == "deletecollection":
            opts = await _delete_options(request, query)
            items, _ = api.list(rt, ns, query)
            gone = []
            for item in items:
                try:
                    obj, _ = api.delete(rt, item["metadata"].get("namespace", ""),
                                        item["metadata"]["name"], opts)
                    gone.append(obj)
                except errors.NotFound:
                    continue
            return _json({"kind": rt.list_kind, "apiVersion": rt.api_version,
                          "metadata": {"resourceVersion": str(api.store.rv)}, "items": gone})
        raise errors.MethodNotAllowed(
            "the server does not allow this method on the requested resource")

    async def _subresource(self, request: web.Request, t: Target, query: dict[str, str]
                           ) -> web.StreamResponse:
        api, rt, sub, method = self.api, t.rt, t.sub, request.method
        ns = t.namespace if rt.namespaced else ""
        dry = _dry_run(query) if method != "GET" else False
        if sub == "status" or (sub == "finalize" and method == "PUT"):
            if method == "GET":
                return _json(api.require(rt, ns, t.name))
            if method == "PUT":
                body = decode_body(await request.read(), request.content_type)
                obj, warnings = api.update(rt, ns, t.name, body, mode=sub, dry_run=dry,
                                           field_validation=_field_validation(query),
                                           manager=_manager(request, query))
                return _json(obj, 200, warnings)
            if method == "PATCH" and sub == "status" and \
                    request.content_type == ssa.APPLY_PATCH:
                obj, warnings, _ = api.apply(
                    rt, ns, t.name, await request.read(),
                    manager=_manager(request, query, True), force=_force(query),
                    mode="status", dry_run=dry, field_validation=_field_validation(query))
                return _json(obj, 200, warnings)
            if method == "PATCH" and sub == "status":
                obj, warnings = api.patch(rt, ns, t.name, await request.read(),
                                          request.content_type, mode="status", dry_run=dry,
                                          manager=_manager(request, query))
                return _json(obj, 200, warnings)
        elif sub == "scale":
            if method == "GET":
                return _json(api.scale_of(rt, api.require(rt, ns, t.name)))
            if method == "PUT":
                body = decode_body(await request.read(), request.content_type)
                return _json(api.set_scale(rt, ns, t.name, body, dry,
                                           manager=_manager(request, query)))
            if method == "PATCH":
                current = api.scale_of(rt, api.require(rt, ns, t.name))
                patched = ext.apply_patch(current, await request.read(), request.content_type,
                                          _scale_type())
                return _json(api.set_scale(rt, ns, t.name, patched, dry,
                                           manager=_manager(request, query)))
        elif sub == "binding" and method == "POST":
            body = decode_body(await request.read(), request.content_type)
            return _json(api.bind(ns, t.name, body, dry), 201)
        elif sub == "eviction" and method == "POST":
            api.delete(rt, ns, t.name, DeleteOptions(dry_run=dry))
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Success", "code": 201}, 201)
        elif sub == "token" and method == "POST":
            body = decode_body(await request.read(), request.content_type)
            return _json(api.token(ns, t.name, body), 201)
        elif sub == "log" and method == "GET":
            pod = api.require(rt, ns, t.name)
            require_node(pod)
            container = pick_container(pod, query.get("container"))
            return await self.relay.logs(request, ns, t.name, container)
        elif sub == "exec" and method in ("GET", "POST"):
            pod = api.require(rt, ns, t.name)
            require_node(pod)
            container = pick_container(pod, query.get("container"))
            params: MultiDict[str] = MultiDict(
                (k, v) for k, v in request.query.items()
                if k in ("command", "stdin", "stdout", "stderr", "tty"))
            return await self.relay.websocket(request, f"/exec/{ns}/{t.name}/{container}",
                                              params)
        elif sub == "portforward" and method in ("GET", "POST"):
            pod = api.require(rt, ns, t.name)
            require_node(pod)
            if spdy.PROTOCOL in request.headers.get("Sec-WebSocket-Protocol", ""):
                return await self.relay.spdy_port_forward(request, ns, t.name)
            params = MultiDict((k, v) for k, v in request.query.items() if k == "ports")
            return await self.relay.websocket(request, f"/portForward/{ns}/{t.name}", params)
        raise errors.MethodNotAllowed(
            "the server does not allow this method on the requested resource")


def _scale_type() -> Any:
    from tp_sandbox.apiserver.resources import ResourceType

    return ResourceType("autoscaling", "v1", "Scale", "scale", True)


def _true(v: str | None) -> bool:
    return v in ("true", "1", "True")


def _method_verb(method: str) -> str:
    return {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())


# Kinds whose registry returns the deleted object (upstream `ReturnDeletedObject`);
# the others answer a Status once the object is gone.
RETURNS_DELETED_OBJECT = frozenset({"Pod", "Namespace", "Service", "ServiceAccount", "Node",
                                    "PersistentVolume", "PersistentVolumeClaim",
                                    "CustomResourceDefinition"})


def _status_success(rt: Any, obj: Obj) -> Obj:
    md = obj.get("metadata", {})
    details = {"name": md.get("name"), "group": rt.group, "kind": rt.plural,
               "uid": md.get("uid")}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {k: v for k, v in details.items() if v}}


def _uid_lookup(store: Store) -> Callable[[str, str, str], str | None]:
    """For the authenticator: the uid of a ServiceAccount or Pod, None when gone."""
    from tp_sandbox.apiserver.resources import by_kind

    def lookup(kind: str, namespace: str, name: str) -> str | None:
        rt = by_kind("v1", kind)
        obj = store.get(rt, namespace, name) if rt else None
        return str(obj["metadata"].get("uid")) if obj else None

    return lookup


def build_app(state_dir: Path, service_cidr: str, settings: ApiServerSettings | None = None
              ) -> web.Application:
    settings = settings or get_settings().apiserver
    store = Store(settings.watch_history, settings.watch_queue_limit,
                  state_dir / settings.store_file if settings.store_file else None,
                  settings.store_synchronous)
    api = Api(store, Authenticator(state_dir), settings, service_cidr, state_dir)
    relay = KubeletRelay(state_dir / "run" / "kubelet.sock", settings)
    api.authn.lookup = _uid_lookup(store)
    if store.empty:  # a restart keeps what the cluster holds, edits included
        with store.batch():
            bootstrap.bootstrap(api)
    crd.restore(api)  # every start: serve the stored CRDs' types again
    app = web.Application(middlewares=[negotiation.middleware, _status_middleware],
                          client_max_size=settings.request_body_limit)
    app[_API_KEY] = api
    app[_RELAY_KEY] = relay
    app.router.add_route("*", "/{tail:.*}", Router(api, relay))

    async def on_shutdown(app: web.Application) -> None:
        # Watches end first so the runner's graceful close does not wait on them.
        api.stopping.set()
        store.close_all()

    async def on_cleanup(app: web.Application) -> None:
        await relay.close()
        store.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    netns: str | None

    @staticmethod
    def parse(text: str) -> Listen:
        addr, _, ns = text.partition("@")
        host, sep, port = addr.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"invalid --listen {text!r}: use ADDR:PORT or ADDR:PORT@NETNS")
        return Listen(host, int(port), ns or None)

    def socket(self) -> socket.socket:
        sock = netns.socket_in(self.netns) if self.netns else socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.setblocking(False)
        return sock


def ssl_context(state_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki = state_dir / "pki"
    ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    return ctx


async def serve(state_dir: Path, listens: list[Listen], service_cidr: str) -> None:
    """Serve until SIGTERM/SIGINT, then stop watches, listeners and relays in order."""
    settings = get_settings().apiserver
    app = build_app(state_dir, service_cidr, settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    try:
        ctx = ssl_context(state_dir)
        for lis in listens:
            site = web.SockSite(runner, lis.socket(), ssl_context=ctx)
            await site.start()
            log.info("serving on https://%s:%d%s", lis.host, lis.port,
                     f" in netns {lis.netns}" if lis.netns else "")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
