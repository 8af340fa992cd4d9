"""Who calls the traffic-manager, and what they may do.

Every call carries `authorization: Bearer <token>` (`tp_protocol.auth`): a developer's
kubeconfig token or an agent pod's projected service-account token. `Gate` reviews it
with TokenReview and checks rights with SubjectAccessReview, both answers cached for
`connect.manager_auth_ttl`. `AuthInterceptor` refuses every RPC (streams and Tunnel
too) without a valid token: UNAUTHENTICATED. A manager without Kubernetes access (unit
tests only) has `OpenGate`: one anonymous identity, everything allowed.

Errors::

    Unauthenticated     no or invalid credentials           (UNAUTHENTICATED)
    Forbidden           authenticated, but not allowed      (PERMISSION_DENIED)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from tp_protocol.auth import token_of
from tp_protocol.settings import get_settings

from tp_cluster.kube import Kube, KubeError
from tp_cluster.manager.state import StateError

log = logging.getLogger(__name__)

POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"
POD_UID_CLAIM = "authentication.kubernetes.io/pod-uid"
SA_PREFIX = "system:serviceaccount:"

# workload kind -> (API group, resource) for access reviews
RESOURCES = {"Deployment": ("apps", "deployments"), "ReplicaSet": ("apps", "replicasets"),
             "StatefulSet": ("apps", "statefulsets")}


class Unauthenticated(StateError):
    code = "UNAUTHENTICATED"


class Forbidden(StateError):
    code = "PERMISSION_DENIED"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the TokenReview's user."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def pod_name(self) -> str:
        """The pod a pod-bound service-account token belongs to ("" otherwise)."""
        return (self.extra.get(POD_NAME_CLAIM) or [""])[0]

    @property
    def pod_uid(self) -> str:
        return (self.extra.get(POD_UID_CLAIM) or [""])[0]

    @property
    def key(self) -> str:
        """What owns a session: the user, and for pod-bound tokens the pod (every pod of a
        namespace may run as the same service account)."""
        return f"{self.username}#{self.pod_name}" if self.pod_name else self.username

    @property
    def service_account_namespace(self) -> str:
        """The namespace of a service-account caller ("" for people)."""
        if not self.username.startswith(SA_PREFIX):
            return ""
        return self.username[len(SA_PREFIX):].split(":", 1)[0]

    def user(self) -> dict[str, Any]:
        return {"username": self.username, "groups": list(self.groups), "uid": self.uid,
                "extra": self.extra}


class _TTLCache:
    """Answers for `ttl` seconds, at most `size` of them (oldest dropped)."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = (time.monotonic() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class Gate:
    """TokenReview + SubjectAccessReview through the manager's own service account."""

    def __init__(self, kube: Kube) -> None:
        s = get_settings().connect
        self.kube = kube
        self._tokens = _TTLCache(s.manager_auth_ttl, s.manager_auth_cache_size)
        self._access = _TTLCache(s.manager_auth_ttl, s.manager_auth_cache_size)

    async def identify(self, metadata: Any) -> Caller:
        token = token_of(metadata)
        if not token:
            raise Unauthenticated("the traffic-manager needs your Kubernetes credentials "
                                  "(`authorization: Bearer <token>` metadata); connect with "
                                  "`tp connect`, whose kubeconfig provides them")
        known = self._tokens.get(token)
        if known is None:
            try:
                status = await asyncio.to_thread(self.kube.token_review, token)
            except KubeError as exc:
                log.warning("TokenReview failed: %s", exc)
                raise Unauthenticated(f"the traffic-manager cannot review your token ({exc}); "
                                      "try again") from exc
            if status.get("authenticated"):
                user = status.get("user") or {}
                known = Caller(str(user.get("username", "")),
                               tuple(user.get("groups") or ()), str(user.get("uid", "")),
                               {k: list(v) for k, v in (user.get("extra") or {}).items()})
            else:
                known = str(status.get("error") or "the token is not valid")
            self._tokens.put(token, known)
        if not isinstance(known, Caller):
            raise Unauthenticated(f"your Kubernetes credentials were refused ({known}); "
                                  "renew your kubeconfig's token and connect again")
        return known

    async def allowed(self, caller: Caller, verb: str, kind: str, namespace: str,
                      name: str) -> bool:
        group, resource = RESOURCES.get(kind or "Deployment", RESOURCES["Deployment"])
        key = (caller.key, caller.groups, verb, resource, namespace, name)
        answer = self._access.get(key)
        if answer is None:
            attributes = {"verb": verb, "group": group, "resource": resource,
                          "namespace": namespace, "name": name}
            try:
                answer, _ = await asyncio.to_thread(self.kube.access_review, caller.user(),
                                                    attributes)
            except KubeError as exc:
                raise Forbidden(f"the traffic-manager cannot check your rights ({exc}); "
                                "try again") from exc
            self._access.put(key, answer)
        return bool(answer)

    async def require_workload_rights(self, caller: Caller, kind: str, namespace: str,
                                      name: str, doing: str) -> None:
        """Forbidden unless `caller` may update and patch the workload (what injecting or
        removing an agent does on their behalf)."""
        for verb in ("update", "patch"):
            if not await self.allowed(caller, verb, kind, namespace, name):
                resource = RESOURCES.get(kind or "Deployment", RESOURCES["Deployment"])[1]
                raise Forbidden(f"{caller.username} may not {verb} {resource} {name!r} in "
                                f"namespace {namespace}, which {doing} needs; ask an admin "
                                "for `edit` rights in that namespace")

    async def pod_workload(self, namespace: str, pod: str) -> tuple[str, str, str]:
        try:
            return await asyncio.to_thread(self.kube.pod_workload, namespace, pod)
        except KubeError as exc:
            raise Forbidden(f"the traffic-manager cannot read pod {namespace}/{pod} ({exc}); "
                            "the agent arrives again later") from exc


class OpenGate(Gate):
    """A manager without Kubernetes access (tests): nobody to ask, everyone is one
    anonymous caller who may do everything."""

    def __init__(self) -> None:
        pass

    async def identify(self, metadata: Any) -> Caller:
        return Caller("")

    async def allowed(self, caller: Caller, verb: str, kind: str, namespace: str,
                      name: str) -> bool:
        return True

    async def pod_workload(self, namespace: str, pod: str) -> tuple[str, str, str]:
        return "", "", ""


def _deny(handler: Any, message: str) -> Any:
    """A handler of `handler`'s shape that answers UNAUTHENTICATED."""

    async def unary(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - an async generator, as grpc.aio wants for streams

    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **codec)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **codec)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **codec)
    return grpc.unary_unary_rpc_method_handler(unary, **codec)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """No RPC runs without credentials the API server accepts."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[Any]],
            handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        try:
            await self.gate.identify(handler_call_details.invocation_metadata)
        except Unauthenticated as exc:
            return _deny(handler, str(exc))
        return handler
