"""The node agent's only door to the API server: the official `kubernetes` client.

Objects travel as plain JSON dicts (``_preload_content=False``) so the rest of the
node code reads the same field names the API uses. Every call is synchronous (the
client is); the kubelet runs them with `asyncio.to_thread` or in its watch thread.
`ApiException` is translated here, once, into `errors.ApiError` and its children.
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

from .errors import ApiConflict, ApiError, ApiNotFound, NodeUsageError

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


def _translate(what: str, call: Callable[[], T]) -> T:
    """Run `call`; turn the client's exceptions into our hierarchy."""
    try:
        return call()
    except ApiException as exc:
        msg = f"{what}: {exc.status} {_reason(exc)}"
        if exc.status == 404:
            raise ApiNotFound(msg, 404) from exc
        if exc.status == 409:
            raise ApiConflict(msg, 409) from exc
        raise ApiError(msg, exc.status or 0) from exc
    except (HTTPError, OSError) as exc:
        raise ApiError(f"{what}: API server unreachable ({exc}); is the sandbox up?") from exc


def _json(resp: Any) -> Obj:
    data: Obj = json.loads(resp.data)
    return data


class KubeApi:
    """Typed-enough wrappers around the few API calls a kubelet makes."""

    def __init__(self, kubeconfig: Path) -> None:
        if not kubeconfig.is_file():
            raise NodeUsageError(
                f"kubeconfig {kubeconfig} not found: pass --kubeconfig of a running sandbox"
            )
        self.client: Any = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig))
        # Any: we pass dicts and read raw responses, which the generated hints do not cover.
        self.core: Any = kubernetes.client.CoreV1Api(self.client)
        self.timeout = get_settings().node.api_timeout

    def close(self) -> None:
        self.client.close()

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
        data = _translate("list pods", lambda: _json(self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node_name}", _preload_content=False,
            _request_timeout=self.timeout)))
        return list(data.get("items") or []), str(data["metadata"].get("resourceVersion", ""))

    def watch_pods(self, node_name: str, resource_version: str, timeout: int
                   ) -> Iterator[tuple[str, Obj]]:
        """Watch events (type, object) after `resource_version` until the server ends it."""
        resp = _translate("watch pods", lambda: self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node_name}", watch=True,
            resource_version=resource_version, timeout_seconds=timeout,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(self.timeout, timeout + self.timeout)))
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(f"watch pods: {status.get('message', status)}",
                                   int(status.get("code") or 0))
                yield str(event["type"]), event["object"]
        except (HTTPError, OSError) as exc:
            raise ApiError(f"watch pods: connection lost ({exc})") from exc
        finally:
            resp.release_conn()

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
