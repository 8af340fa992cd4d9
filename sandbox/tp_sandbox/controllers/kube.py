"""The controllers' only door to the cluster: the official `kubernetes` client.

Objects travel as plain JSON dicts (what the API sends), so one generic code path
serves every resource type, against the sandbox and a real cluster alike. Failures are
translated here, once, into `errors.KubeError` subclasses or `errors.Unreachable`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as _watch

from tp_sandbox.apiserver import resources

from . import errors

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Res:
    """A REST resource, addressed generically."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _res(r: resources.ResourceType) -> Res:
    return Res(r.group, r.version, r.plural, r.kind, r.namespaced)


ALL: tuple[Res, ...] = tuple(_res(r) for r in resources.RESOURCES)
"""Every type the sandbox serves (the namespace and garbage collectors walk these)."""


def by_kind(api_version: str, kind: str) -> Res | None:
    for r in ALL:
        if (r.api_version, r.kind) == (api_version, kind):
            return r
    return None


def _get(plural: str, group: str = "") -> Res:
    for r in ALL:
        if (r.plural, r.group) == (plural, group):
            return r
    raise LookupError(plural)


PODS = _get("pods")
SERVICES = _get("services")
ENDPOINTS = _get("endpoints")
NODES = _get("nodes")
NAMESPACES = _get("namespaces")
EVENTS = _get("events")
DEPLOYMENTS = _get("deployments", "apps")
REPLICASETS = _get("replicasets", "apps")
ENDPOINTSLICES = _get("endpointslices", "discovery.k8s.io")
STATEFULSETS = _get("statefulsets", "apps")
DAEMONSETS = _get("daemonsets", "apps")
CONTROLLERREVISIONS = _get("controllerrevisions", "apps")
JOBS = _get("jobs", "batch")
CRONJOBS = _get("cronjobs", "batch")
CRDS = _get("customresourcedefinitions", "apiextensions.k8s.io")
PVCS = _get("persistentvolumeclaims")


def custom_types(crds: list[Obj]) -> list[Res]:
    """The served types the given CustomResourceDefinitions define."""
    out = []
    for crd in crds:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for v in spec.get("versions") or []:
            if v.get("served", True):
                out.append(Res(str(spec.get("group")), str(v.get("name")),
                               str(names.get("plural")), str(names.get("kind")),
                               spec.get("scope", "Namespaced") == "Namespaced"))
    return out


def _translate(exc: ApiException) -> errors.KubeError:
    reason, message = exc.reason or "", str(exc.body or "")
    try:
        status = json.loads(exc.body) if exc.body else {}
        reason = status.get("reason") or reason
        message = status.get("message") or message
    except (ValueError, AttributeError):
        pass
    code = exc.status or 0
    cls: type[errors.KubeError] = errors.KubeError
    if code == 404:
        cls = errors.NotFound
    elif code == 409:
        cls = errors.AlreadyExists if reason == "AlreadyExists" else errors.Conflict
    elif code == 410:
        cls = errors.Expired
    elif code == 422:
        cls = errors.Invalid
    return cls(code, reason, message)


class WatchStream:
    """One open watch; iterate for (type, object); `close()` from any thread ends it."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        try:
            lines: Any = _watch.iter_resp_lines
            for line in lines(self._response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    cls = errors.Expired if code == 410 else errors.KubeError
                    raise cls(code, obj.get("reason", ""), obj.get("message", ""))
                yield kind, obj
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed.is_set():
                raise errors.Unreachable(f"watch stream broke: {exc}") from exc
        finally:
            self._response.release_conn()

    def close(self) -> None:
        self._closed.set()
        try:
            self._response.shutdown()  # unblocks a reader sitting in recv()
        except Exception:
            log.debug("closing watch", exc_info=True)


class Kube:
    """Generic CRUD/list/watch over the official client's ApiClient."""

    def __init__(self, api: client.ApiClient, request_timeout: float) -> None:
        self.api: Any = api  # the generated client is only partly typed
        self.request_timeout = request_timeout

    @classmethod
    def from_kubeconfig(cls, path: str, request_timeout: float, pool_size: int,
                        context: str | None = None) -> Kube:
        cfg: Any = client.Configuration()
        try:
            load: Any = config.load_kube_config
            load(config_file=path, context=context, client_configuration=cfg)
        except (config.ConfigException, OSError, ValueError) as exc:
            raise errors.ControllerError(
                f"cannot load kubeconfig {path}: {exc}; pass --kubeconfig with a valid file"
            ) from exc
        # every informer holds a connection for its watch, workers need more
        cfg.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(cfg), request_timeout)

    def _request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, *,
                 body: Any = None, content_type: str = "application/json",
                 timeout: Any = None, stream: bool = False) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        req = self.api.param_serialize(method, path, query_params=query or [],
                                       header_params=headers, body=body,
                                       auth_settings=["BearerToken"])
        try:
            resp: Any = self.api.call_api(*req,
                                          _request_timeout=timeout or self.request_timeout)
            if not 200 <= resp.status <= 299:
                resp.read()
                text = (resp.data or b"").decode("utf-8", "replace")
                raise ApiException.from_response(http_resp=resp, body=text, data=None)
        except ApiException as exc:
            raise _translate(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.Unreachable(f"{method} {path}: {exc}") from exc
        if stream:
            return resp.response
        data = resp.read()
        return json.loads(data) if data else {}

    # -- reads ---------------------------------------------------------------

    def list_all(self, res: Res, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[Obj], str]:
        """All objects and the list's resourceVersion (to start a watch from)."""
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        out = self._request("GET", res.path(namespace), query)
        items: list[Obj] = out.get("items") or []
        for item in items:  # lists omit them per item; handlers want them
            item.setdefault("kind", res.kind)
            item.setdefault("apiVersion", res.api_version)
        return items, str(out.get("metadata", {}).get("resourceVersion", ""))

    def watch(self, res: Res, resource_version: str, timeout_seconds: int) -> WatchStream:
        query: list[tuple[str, Any]] = [
            ("watch", "true"), ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"), ("timeoutSeconds", timeout_seconds)]
        # the read timeout outlives the server-side one so a silent server is noticed
        resp = self._request("GET", res.path(), query, stream=True,
                             timeout=(self.request_timeout, timeout_seconds + 15))
        return WatchStream(resp)

    def get(self, res: Res, namespace: str | None, name: str) -> Obj:
        out: Obj = self._request("GET", res.path(namespace, name))
        return out

    # -- writes --------------------------------------------------------------

    def create(self, res: Res, namespace: str | None, body: Obj) -> Obj:
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        out: Obj = self._request("POST", res.path(namespace), body=body)
        return out

    def update(self, res: Res, obj: Obj, sub: str | None = None) -> Obj:
        """PUT the whole object (its resourceVersion makes it conditional)."""
        meta = obj["metadata"]
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        out: Obj = self._request("PUT", res.path(meta.get("namespace"), meta["name"], sub),
                                 body=body)
        return out

    def merge_patch(self, res: Res, namespace: str | None, name: str, patch: Obj,
                    sub: str | None = None) -> Obj:
        out: Obj = self._request("PATCH", res.path(namespace, name, sub), body=patch,
                                 content_type="application/merge-patch+json")
        return out

    def json_patch(self, res: Res, namespace: str | None, name: str,
                   ops: list[Obj]) -> Obj:
        out: Obj = self._request("PATCH", res.path(namespace, name), body=ops,
                                 content_type="application/json-patch+json")
        return out

    def delete(self, res: Res, namespace: str | None, name: str, *,
               propagation: str | None = None, uid: str | None = None) -> None:
        """Delete; `uid` makes it conditional on still being that very object."""
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        self._request("DELETE", res.path(namespace, name), body=body)

    def bind(self, namespace: str, pod: str, node: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        self._request("POST", PODS.path(namespace, pod, "binding"), body=body)

    def finalize_namespace(self, ns: Obj) -> None:
        self._request("PUT", NAMESPACES.path(None, ns["metadata"]["name"], "finalize"), body=ns)

    def close(self) -> None:
        self.api.close()
