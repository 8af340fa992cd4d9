"""The cluster side's one adapter to the Kubernetes API (official `kubernetes` client).

Everything in `tp_cluster` that talks to the API server goes through `Kube`, so the
same code runs against the sandbox and a real cluster. Calls are synchronous (the
official client is); async callers use `asyncio.to_thread`. Every request carries a
timeout (`Settings.connect.manager_kube_timeout`).

Errors::

    KubeError                 an API call failed; .status is the HTTP status (0: no answer)
    +-- KubeNotFound          404
    +-- KubeConflict          409 (stale resourceVersion on a write, or already exists)

Workloads and Services for agent injection are read and written as raw JSON dicts
(`_preload_content=False`), never as client models: a model round trip drops fields
the client does not know, and `restore` must give back the object exactly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tp_protocol.settings import get_settings

from tp_cluster.errors import ClusterError

log = logging.getLogger(__name__)


class KubeError(ClusterError):
    """A Kubernetes API call failed."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class KubeNotFound(KubeError):
    """The object does not exist (404)."""


class KubeConflict(KubeError):
    """The write lost a race (409): read again and retry."""


def _error(exc: ApiException, what: str) -> KubeError:
    body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")
    message = f"{what}: {exc.status} {exc.reason}"
    cls = {404: KubeNotFound, 409: KubeConflict}.get(int(exc.status or 0), KubeError)
    return cls(message, status=int(exc.status or 0), body=body)


def _json(response: Any) -> dict[str, Any]:
    """The body of a `_preload_content=False` answer as a dict."""
    data: Any = response.data
    loaded: dict[str, Any] = json.loads(data.decode() if isinstance(data, bytes) else data)
    return loaded


def _items(response: Any, kind: str, api_version: str) -> list[dict[str, Any]]:
    # list items carry no kind/apiVersion on a real API server; writes need them
    return [{"apiVersion": api_version, "kind": kind, **item}
            for item in _json(response).get("items") or []]


"""Kinds the installer writes: kind -> (Kube's API attribute, resource name in the
client's method names, namespaced)."""


@dataclass
class PodState:
    """What rollout progress needs to know about one pod."""

    name: str
    phase: str
    ready: bool
    waiting_reason: str = ""
    waiting_message: str = ""
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Container name -> (reason, message) of each container that is waiting."""


@dataclass
class DeploymentState:
    """Rollout state of a Deployment (absent: `exists` is False)."""

    exists: bool
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    observed: bool = False
    image: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    pods: list[PodState] = field(default_factory=list)


class Kube:
    """The official client, bound to one cluster."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client
        # Any: we pass plain dicts as bodies and read models loosely (fields may be None)
        self.core: Any = client.CoreV1Api(api_client)
        self.apps: Any = client.AppsV1Api(api_client)
        self.rbac: Any = client.RbacAuthorizationV1Api(api_client)
        self.authn: Any = client.AuthenticationV1Api(api_client)
        self.authz: Any = client.AuthorizationV1Api(api_client)
        self.timeout = get_settings().connect.manager_kube_timeout

    @classmethod
    def in_cluster(cls) -> Kube:
        """From the pod's service-account token (the traffic-manager's case)."""
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Kube:
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context)
        return cls(api_client)

    # --- cluster info -----------------------------------------------------------------

    def node_pod_cidrs(self) -> list[str]:
        """Every node's spec.podCIDRs (or podCIDR)."""
        try:
            nodes = self.core.list_node(_request_timeout=self.timeout)
        except ApiException as exc:
            raise _error(exc, "list nodes") from exc
        cidrs: list[str] = []
        for node in nodes.items:
            spec = node.spec
            for cidr in (spec.pod_cidrs or ([spec.pod_cidr] if spec.pod_cidr else [])):
                if cidr not in cidrs:
                    cidrs.append(cidr)
        return cidrs

    def pod_ips(self) -> list[str]:
        """IPs of all non-host-network pods."""
        try:
            pods = self.core.list_pod_for_all_namespaces(_request_timeout=self.timeout)
        except ApiException as exc:
            raise _error(exc, "list pods") from exc
        ips: list[str] = []
        for pod in pods.items:
            if pod.spec.host_network or not pod.status or not pod.status.pod_ip:
                continue
            ips.append(pod.status.pod_ip)
        return ips

    def service_cluster_ip(self, namespace: str, name: str) -> str | None:
        try:
            svc = self.core.read_namespaced_service(name, namespace,
                                                    _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read service {namespace}/{name}") from exc
        ip = svc.spec.cluster_ip
        return ip if ip and ip != "None" else None

    def service_cluster_ips(self) -> list[str]:
        try:
            services = self.core.list_service_for_all_namespaces(_request_timeout=self.timeout)
        except ApiException as exc:
            raise _error(exc, "list services") from exc
        return [s.spec.cluster_ip for s in services.items
                if s.spec.cluster_ip and s.spec.cluster_ip != "None"]

    def refused_service_message(self, namespace: str, cluster_ip: str) -> str:
        """Create (dryRun) a Service with `cluster_ip`; the API server's refusal message.

        Returns "" when the server accepted it (the address was in range after all).
        """
        body = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "tp-service-cidr-probe", "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": [{"port": 443}]},
        }
        try:
            self.core.create_namespaced_service(namespace, body, dry_run="All",
                                                _request_timeout=self.timeout)
        except ApiException as exc:
            err = _error(exc, "probe service CIDR")
            if exc.status in (400, 422):
                return err.body
            raise err from exc
        return ""

    # --- workloads --------------------------------------------------------------------

    def _read(self, kind: str) -> Any:
        """The official client's read call for one of the interceptable kinds."""
        return {"Deployment": self.apps.read_namespaced_deployment,
                "ReplicaSet": self.apps.read_namespaced_replica_set,
                "StatefulSet": self.apps.read_namespaced_stateful_set}[kind]

    def deployment_state(self, namespace: str, name: str,
                         kind: str = "Deployment") -> DeploymentState:
        """Rollout state of a Deployment, ReplicaSet or StatefulSet (`kind`)."""
        try:
            dep = self._read(kind)(name, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return DeploymentState(exists=False)
            raise _error(exc, f"read {kind.lower()} {namespace}/{name}") from exc
        status = dep.status
        # a ReplicaSet has no updatedReplicas: its pods carry the template they were made of
        updated = (getattr(status, "updated_replicas", None) if kind != "ReplicaSet"
                   else getattr(status, "ready_replicas", None))
        state = DeploymentState(
            exists=True,
            desired=dep.spec.replicas if dep.spec.replicas is not None else 1,
            updated=(status and updated) or 0,
            ready=(status and status.ready_replicas) or 0,
            available=(status and status.available_replicas) or 0,
            observed=bool(status and (status.observed_generation or 0)
                          >= (dep.metadata.generation or 0)),
            image=dep.spec.template.spec.containers[0].image,
            annotations=dict(dep.metadata.annotations or {}),
        )
        selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
        try:
            pods = self.core.list_namespaced_pod(namespace, label_selector=selector,
                                                 _request_timeout=self.timeout)
        except ApiException as exc:
            raise _error(exc, f"list pods of {namespace}/{name}") from exc
        for pod in pods.items:
            ready, reason, message = False, "", ""
            waiting: dict[str, tuple[str, str]] = {}
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                ready = bool(cs.ready)
                if cs.state and cs.state.waiting:
                    reason = cs.state.waiting.reason or ""
                    message = cs.state.waiting.message or ""
                    waiting[cs.name] = (reason, message)
            state.pods.append(PodState(pod.metadata.name,
                                       (pod.status and pod.status.phase) or "",
                                       ready, reason, message, waiting))
        return state

    # --- workloads (agent injection) ----------------------------------------------------

    def get_deployment(self, namespace: str, name: str,
                       kind: str = "Deployment") -> dict[str, Any] | None:
        """The Deployment (or ReplicaSet, StatefulSet: `kind`) as the server stores it;
        None when absent."""
        try:
            return _json(self._read(kind)(
                name, namespace, _request_timeout=self.timeout, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read {kind.lower()} {namespace}/{name}") from exc

    def delete_pods(self, namespace: str, selector: dict[str, str]) -> None:
        """Delete the pods `selector` matches (a ReplicaSet makes them again from its
        template: it never replaces pods by itself when the template changes)."""
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        try:
            self.core.delete_collection_namespaced_pod(namespace, label_selector=labels,
                                                       _request_timeout=self.timeout)
        except ApiException as exc:
            raise _error(exc, f"delete pods {labels} in {namespace}") from exc

    def list_deployments(self, namespace: str = "") -> list[dict[str, Any]]:
        """Deployments of `namespace` ("" = all namespaces)."""
        try:
            if namespace:
                response = self.apps.list_namespaced_deployment(
                    namespace, _request_timeout=self.timeout, _preload_content=False)
            else:
                response = self.apps.list_deployment_for_all_namespaces(
                    _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"list deployments in {namespace or 'all namespaces'}") from exc
        return _items(response, "Deployment", "apps/v1")

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_service(
                name, namespace, _request_timeout=self.timeout, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read service {namespace}/{name}") from exc

    # --- the manager's own TLS material (direct connect) -------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_secret(
                name, namespace, _request_timeout=self.timeout, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read secret {namespace}/{name}") from exc

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            self.core.create_namespaced_secret(namespace, body, _request_timeout=self.timeout,
                                               _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"create secret {namespace}/{body['metadata']['name']}") from exc

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_config_map(
                name, namespace, _request_timeout=self.timeout, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read configmap {namespace}/{name}") from exc

    def write_configmap(self, namespace: str, body: dict[str, Any], *, create: bool) -> None:
        name = body["metadata"]["name"]
        try:
            if create:
                self.core.create_namespaced_config_map(
                    namespace, body, _request_timeout=self.timeout, _preload_content=False)
            else:
                self.core.replace_namespaced_config_map(
                    name, namespace, body, _request_timeout=self.timeout,
                    _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"write configmap {namespace}/{name}") from exc

    def list_services(self, namespace: str) -> list[dict[str, Any]]:
        try:
            response = self.core.list_namespaced_service(
                namespace, _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"list services in {namespace}") from exc
        return _items(response, "Service", "v1")

    def namespace_exists(self, namespace: str) -> bool:
        try:
            self.core.read_namespace(namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _error(exc, f"read namespace {namespace}") from exc
        return True

    def list_replicasets(self, namespace: str) -> list[dict[str, Any]]:
        try:
            response = self.apps.list_namespaced_replica_set(
                namespace, _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"list replicasets in {namespace}") from exc
        return _items(response, "ReplicaSet", "apps/v1")

    def list_statefulsets(self, namespace: str) -> list[dict[str, Any]]:
        """StatefulSets of `namespace`; none when the cluster does not serve the kind."""
        try:
            response = self.apps.list_namespaced_stateful_set(
                namespace, _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _error(exc, f"list statefulsets in {namespace}") from exc
        return _items(response, "StatefulSet", "apps/v1")

    def list_workloads_of(self, namespace: str = "") -> list[dict[str, Any]]:
        """ReplicaSets and StatefulSets of `namespace` ("" = all namespaces)."""
        if namespace:
            return self.list_replicasets(namespace) + self.list_statefulsets(namespace)
        try:
            rs = self.apps.list_replica_set_for_all_namespaces(
                _request_timeout=self.timeout, _preload_content=False)
            sts = self.apps.list_stateful_set_for_all_namespaces(
                _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, "list replicasets and statefulsets in all namespaces") from exc
        return _items(rs, "ReplicaSet", "apps/v1") + _items(sts, "StatefulSet", "apps/v1")

    def service_backends(self, namespace: str, service: str) -> tuple[list[str], list[str]]:
        """(pods behind the Service's ready endpoints, pods its selector still selects).

        Both as pod names; the second also lists terminating pods, which proxies may
        still send new connections to.
        """
        try:
            endpoints = self.core.read_namespaced_endpoints(service, namespace,
                                                            _request_timeout=self.timeout)
            ready = [a.target_ref.name for sub in endpoints.subsets or []
                     for a in sub.addresses or [] if a.target_ref is not None]
            svc = self.core.read_namespaced_service(service, namespace,
                                                    _request_timeout=self.timeout)
            selector = svc.spec.selector or {}
            selected: list[str] = []
            if selector:
                pods = self.core.list_namespaced_pod(
                    namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items()),
                    _request_timeout=self.timeout)
                selected = [p.metadata.name for p in pods.items]
        except ApiException as exc:
            if exc.status == 404:
                return [], []
            raise _error(exc, f"read the endpoints of service {namespace}/{service}") from exc
        return ready, selected

    # --- dial routes (pftunnel) -------------------------------------------------------

    def all_services(self) -> list[dict[str, Any]]:
        """Every Service of the cluster (raw JSON), for cluster IP -> Service."""
        try:
            response = self.core.list_service_for_all_namespaces(
                _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, "list services in all namespaces") from exc
        return _items(response, "Service", "v1")

    def read_endpoints(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Endpoints of a Service (raw JSON), None when there are none."""
        try:
            return _json(self.core.read_namespaced_endpoints(
                name, namespace, _request_timeout=self.timeout, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"read the endpoints of service {namespace}/{name}") from exc

    def pods_with_ip(self, ip: str) -> list[dict[str, Any]]:
        """Pods (raw JSON) whose status.podIP is `ip` (a finished pod may keep its IP)."""
        try:
            response = self.core.list_pod_for_all_namespaces(
                field_selector=f"status.podIP={ip}", _request_timeout=self.timeout,
                _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"list pods with IP {ip}") from exc
        return _items(response, "Pod", "v1")

    def pod_containers(self, namespace: str, names: list[str]) -> dict[str, list[str]]:
        """Pod name -> its container names (pods that are gone are left out)."""
        found: dict[str, list[str]] = {}
        for name in names:
            try:
                pod = self.core.read_namespaced_pod(name, namespace,
                                                    _request_timeout=self.timeout)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise _error(exc, f"read pod {namespace}/{name}") from exc
            found[name] = [c.name for c in pod.spec.containers]
        return found

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int) -> bytes:
        """The last `tail_lines` lines of a container's log (pods/log; `tp gather-logs`)."""
        try:
            response = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=tail_lines,
                _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, f"read the log of {namespace}/{pod} ({container})") from exc
        data: Any = response.data
        return data if isinstance(data, bytes) else str(data).encode()

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT a workload or Service read earlier; its resourceVersion guards the write.

        Raises KubeConflict when someone else wrote in between (read again, retry).
        """
        meta = obj["metadata"]
        name, ns, kind = meta["name"], meta["namespace"], obj["kind"]
        t = self.timeout
        try:
            if kind == "Deployment":
                response = self.apps.replace_namespaced_deployment(
                    name, ns, obj, _request_timeout=t, _preload_content=False)
            elif kind == "ReplicaSet":
                response = self.apps.replace_namespaced_replica_set(
                    name, ns, obj, _request_timeout=t, _preload_content=False)
            elif kind == "StatefulSet":
                response = self.apps.replace_namespaced_stateful_set(
                    name, ns, obj, _request_timeout=t, _preload_content=False)
            elif kind == "Service":
                response = self.core.replace_namespaced_service(
                    name, ns, obj, _request_timeout=t, _preload_content=False)
            else:
                raise KubeError(f"cannot replace a {kind}: only workloads and Services")
        except ApiException as exc:
            raise _error(exc, f"replace {kind} {ns}/{name}") from exc
        return _json(response)

    # --- callers' identity (the manager authenticates every gRPC call) -----------------

    def token_review(self, token: str) -> dict[str, Any]:
        """The TokenReview status for `token` (`authenticated`, `user`, `error`)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}}
        try:
            response = self.authn.create_token_review(body, _request_timeout=self.timeout,
                                                      _preload_content=False)
        except ApiException as exc:
            raise _error(exc, "review a caller's token (TokenReview)") from exc
        status: dict[str, Any] = _json(response).get("status") or {}
        return status

    def access_review(self, user: dict[str, Any], attributes: dict[str, str]
                      ) -> tuple[bool, str]:
        """Whether `user` (a TokenReview `user`) may do `attributes` (resourceAttributes),
        and the authorizer's reason."""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user.get("username", ""), "uid": user.get("uid", ""),
                         "groups": list(user.get("groups") or []),
                         "extra": dict(user.get("extra") or {}),
                         "resourceAttributes": attributes}}
        try:
            response = self.authz.create_subject_access_review(
                body, _request_timeout=self.timeout, _preload_content=False)
        except ApiException as exc:
            raise _error(exc, "check a caller's rights (SubjectAccessReview)") from exc
        status = _json(response).get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def pod_workload(self, namespace: str, pod: str) -> tuple[str, str, str]:
        """(uid, kind, name) of the workload that owns `pod` (a ReplicaSet's Deployment);
        ("", "", "") when the pod is gone or has no controller."""
        try:
            obj = _json(self.core.read_namespaced_pod(pod, namespace,
                                                      _request_timeout=self.timeout,
                                                      _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return "", "", ""
            raise _error(exc, f"read pod {namespace}/{pod}") from exc
        uid = str(obj["metadata"].get("uid", ""))
        owner = _controller(obj)
        if owner.get("kind") == "ReplicaSet":
            try:
                rs = _json(self.apps.read_namespaced_replica_set(
                    owner["name"], namespace, _request_timeout=self.timeout,
                    _preload_content=False))
            except ApiException as exc:
                if exc.status == 404:
                    return uid, "", ""
                raise _error(exc, f"read replicaset {namespace}/{owner['name']}") from exc
            owner = _controller(rs) or owner
        return uid, str(owner.get("kind", "")), str(owner.get("name", ""))


def _controller(obj: dict[str, Any]) -> dict[str, Any]:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return {}
