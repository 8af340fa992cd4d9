"""The node's only door to the API server: the official `kubernetes` client.

One adapter serves the whole node: the kubelet (Node, Pods, what pods refer to) and
kube-proxy / cluster DNS (list and watch Services, EndpointSlices and Endpoints of
all namespaces, create the kube-dns objects). Objects travel as plain JSON dicts
(``_preload_content=False``) so the rest of the node code reads the same field names
the API uses. Every call is synchronous (the client is); callers run them with
`asyncio.to_thread` or in their watch threads. `ApiException` is translated here,
once, into `errors.ApiError` and its children.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from tp_protocol.settings import get_settings
from urllib3.exceptions import HTTPError

from .errors import ApiConflict, ApiError, ApiGone, ApiNotFound, NodeUsageError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")
_MERGE = "application/merge-patch+json"


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


_BY_STATUS: dict[int, type[ApiError]] = {404: ApiNotFound, 409: ApiConflict, 410: ApiGone}


def _error(message: str, status: int) -> ApiError:
    """The hierarchy's class for an HTTP status (failed calls and watch ERROR events)."""
    return _BY_STATUS.get(status, ApiError)(message, status)


def _translate(what: str, call: Callable[[], T]) -> T:
    """Run `call`; turn the client's exceptions into our hierarchy."""
    try:
        return call()
    except ApiException as exc:
        status = exc.status or 0
        raise _error(f"{what}: {exc.status} {_reason(exc)}", status) from exc
    except (HTTPError, OSError) as exc:
        raise ApiError(f"{what}: API server unreachable ({exc}); is the sandbox up?") from exc


def _json(resp: Any) -> Obj:
    data: Obj = json.loads(resp.data)
    return data


SERVICE_KINDS = ("services", "endpointslices", "endpoints")
"""The kinds kube-proxy and cluster DNS list and watch (in this order)."""


class KubeApi:
    """Typed-enough wrappers around the few API calls the node makes."""

    def __init__(self, api_client: Any, *, owned: bool = False) -> None:
        """Use `api_client`; `close()` closes it only when `owned` (see `from_kubeconfig`)."""
        self.client: Any = api_client
        self._owned = owned
        # Any: we pass dicts and read raw responses, which the generated hints do not cover.
        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.discovery: Any = kubernetes.client.DiscoveryV1Api(api_client)
        self.timeout = get_settings().node.api_timeout

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> KubeApi:
        """An adapter with its own client for `kubeconfig` (closed by `close()`)."""
        if not kubeconfig.is_file():
            raise NodeUsageError(
                f"kubeconfig {kubeconfig} not found: pass --kubeconfig of a running sandbox"
            )
        client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig))
        return cls(client, owned=True)

    def close(self) -> None:
        if self._owned:
            self.client.close()

    # -- list and watch (all namespaces) -----------------------------------------------
    def _lister(self, kind: str) -> Callable[..., Any]:
        listers: dict[str, Callable[..., Any]] = {
            "pods": self.core.list_pod_for_all_namespaces,
            "services": self.core.list_service_for_all_namespaces,
            "endpoints": self.core.list_endpoints_for_all_namespaces,
            "endpointslices": self.discovery.list_endpoint_slice_for_all_namespaces,
        }
        try:
            return listers[kind]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(listers)}") from None

    def list_objects(self, kind: str, *, field_selector: str | None = None
                     ) -> tuple[list[Obj], str]:
        """All objects of `kind` (matching `field_selector`) and the list's resourceVersion."""
        lister = self._lister(kind)
        selector = {"field_selector": field_selector} if field_selector else {}
        data = _translate(f"list {kind}", lambda: _json(lister(
            **selector, _preload_content=False, _request_timeout=self.timeout)))
        return list(data.get("items") or []), str(data["metadata"].get("resourceVersion", ""))

    def watch_objects(self, kind: str, resource_version: str, timeout: int, *,
                      field_selector: str | None = None,
                      on_open: Callable[[Any], None] = lambda _resp: None
                      ) -> Iterator[tuple[str, Obj]]:
        """(type, object) events after `resource_version` until the server ends the watch.

        `on_open` receives the open response so another thread can `shutdown()` it.
        An ERROR event raises (`ApiGone` for 410: list again).
        """
        lister = self._lister(kind)
        selector = {"field_selector": field_selector} if field_selector else {}
        resp = _translate(f"watch {kind}", lambda: lister(
            **selector, watch=True, resource_version=resource_version,
            timeout_seconds=timeout, allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(self.timeout, timeout + self.timeout)))
        on_open(resp)
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise _error(f"watch {kind}: {status.get('message', status)}",
                                 int(status.get("code") or 0))
                yield str(event["type"]), event["object"]
        except (HTTPError, OSError, ValueError) as exc:
            raise ApiError(f"watch {kind}: connection lost ({exc})") from exc
        finally:
            resp.release_conn()

    def create(self, kind: str, namespace: str, body: Obj) -> bool:
        """Create a Service, Endpoints or EndpointSlice; False when it exists already."""
        creators: dict[str, Callable[..., Any]] = {
            "services": self.core.create_namespaced_service,
            "endpoints": self.core.create_namespaced_endpoints,
            "endpointslices": self.discovery.create_namespaced_endpoint_slice,
        }
        name = body.get("metadata", {}).get("name", "")
        try:
            _translate(f"create {kind} {namespace}/{name}", lambda: creators[kind](
                namespace, body, _preload_content=False, _request_timeout=self.timeout).data)
        except ApiConflict:
            return False
        return True

    # -- Events ------------------------------------------------------------------------
    def create_event(self, namespace: str, body: Obj) -> None:
        _translate(f"create event {namespace}/{body['metadata']['name']}",
                   lambda: self.core.create_namespaced_event(
                       namespace, body, _preload_content=False,
                       _request_timeout=self.timeout).data)

    def patch_event(self, namespace: str, name: str, patch: Obj) -> None:
        _translate(f"patch event {namespace}/{name}",
                   lambda: self.core.patch_namespaced_event(
                       name, namespace, patch, _preload_content=False,
                       _request_timeout=self.timeout).data)

    # -- Node --------------------------------------------------------------------------
    def get_node(self, name: str) -> Obj | None:
        try:
            return _translate(f"get node {name}", lambda: _json(self.core.read_node(
                name, _preload_content=False, _request_timeout=self.timeout)))
        except ApiNotFound:
            return None

    def create_node(self, body: Obj) -> Obj:
        return _translate("create node", lambda: _json(self.core.create_node(
            body, _preload_content=False, _request_timeout=self.timeout)))

    def patch_node(self, name: str, patch: Obj) -> Obj:
        return _translate(f"patch node {name}", lambda: _json(self.core.patch_node(
            name, patch, _content_type=_MERGE, _preload_content=False,
            _request_timeout=self.timeout)))

    def patch_node_status(self, name: str, patch: Obj) -> Obj:
        return _translate(f"patch node status {name}", lambda: _json(
            self.core.patch_node_status(name, patch, _content_type=_MERGE,
                                        _preload_content=False, _request_timeout=self.timeout)))

    # -- Pods --------------------------------------------------------------------------
    def list_pods(self, node_name: str) -> tuple[list[Obj], str]:
        """Pods bound to `node_name` and the list's resourceVersion."""
        return self.list_objects("pods", field_selector=f"spec.nodeName={node_name}")

    def watch_pods(self, node_name: str, resource_version: str, timeout: int
                   ) -> Iterator[tuple[str, Obj]]:
        """Watch events (type, object) after `resource_version` until the server ends it."""
        return self.watch_objects("pods", resource_version, timeout,
                                  field_selector=f"spec.nodeName={node_name}")

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        try:
            return _translate(f"get pod {namespace}/{name}", lambda: _json(
                self.core.read_namespaced_pod(name, namespace, _preload_content=False,
                                              _request_timeout=self.timeout)))
        except ApiNotFound:
            return None

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> Obj:
        return _translate(f"update status of pod {namespace}/{name}", lambda: _json(
            self.core.patch_namespaced_pod_status(
                name, namespace, {"status": status}, _content_type=_MERGE,
                _preload_content=False, _request_timeout=self.timeout)))

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        """Delete with grace 0 (the kubelet's last word), only if still the same pod."""
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        # Gone already, or a new pod with the same name (not ours to delete): both fine.
        with contextlib.suppress(ApiNotFound, ApiConflict):
            _translate(f"delete pod {namespace}/{name}", lambda: self.core.delete_namespaced_pod(
                name, namespace, body=body, grace_period_seconds=0, _preload_content=False,
                _request_timeout=self.timeout).data)

    # -- What pods refer to ------------------------------------------------------------
    def get_config_map(self, namespace: str, name: str) -> Obj:
        return _translate(f"configmap {namespace}/{name}", lambda: _json(
            self.core.read_namespaced_config_map(name, namespace, _preload_content=False,
                                                 _request_timeout=self.timeout)))

    def get_secret(self, namespace: str, name: str) -> Obj:
        return _translate(f"secret {namespace}/{name}", lambda: _json(
            self.core.read_namespaced_secret(name, namespace, _preload_content=False,
                                             _request_timeout=self.timeout)))

    def list_services(self, namespace: str) -> list[Obj]:
        data = _translate(f"list services in {namespace}", lambda: _json(
            self.core.list_namespaced_service(namespace, _preload_content=False,
                                              _request_timeout=self.timeout)))
        return list(data.get("items") or [])

    def request_token(self, namespace: str, service_account: str, expiration: int,
                      pod: Obj | None = None, audiences: list[str] | None = None) -> str:
        """A service-account token from the TokenRequest API (bound to the pod if given)."""
        spec: Obj = {"expirationSeconds": expiration, "audiences": audiences or []}
        if pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1",
                                      "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        data = _translate(
            f"token for serviceaccount {namespace}/{service_account}",
            lambda: _json(self.core.create_namespaced_service_account_token(
                service_account, namespace, body, _preload_content=False,
                _request_timeout=self.timeout)))
        return str(data["status"]["token"])
