"""The daemon's one Kubernetes adapter (official client): kubeconfig, the manager's install,
removal and pod (for the port-forward). Workloads, intercept readiness and volumes are
the manager's to answer (ListWorkloads, dispositions, the agent's volume port).

Every call of the official client happens here and its errors are translated once,
into `tp_daemon.errors`, chained with `from`. The calls block, so async callers run
them with `asyncio.to_thread`. A context with static credentials is read without
importing the official client (`tp_daemon.kubestatic`): connect's GETs then go out with
the standard library, and the official client is loaded on first need (an install).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tp_cluster import manifests
from tp_protocol import VERSION

from tp_daemon import kubestatic
from tp_daemon.errors import (
    ClusterRefused,
    ClusterUnreachable,
    ConfigError,
    DaemonError,
    ManagerError,
)

if TYPE_CHECKING:
    from tp_daemon.portforward import ApiEndpoint

log = logging.getLogger(__name__)


class _Module:
    """A module imported on first attribute use: the official client is imported only by
    what uses it (see `tp_daemon.kubestatic`)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


# The official client's annotations are partial (dict bodies, optional fields); the
# adapter uses it untyped and keeps typed values at its own boundary.
client: Any = _Module("kubernetes.client")
config: Any = _Module("kubernetes.config")


def _api_errors() -> tuple[type[Any], ...]:
    """The exceptions of a status answer: ours, and the official client's once imported
    (it cannot have raised one before)."""
    official = sys.modules.get("kubernetes.client.exceptions")
    return ((kubestatic.StatusError, official.ApiException) if official is not None
            else (kubestatic.StatusError,))


def _network_errors() -> tuple[type[BaseException], ...]:
    """OSError and TimeoutError, and urllib3's errors once the official client is loaded."""
    urllib3 = sys.modules.get("urllib3.exceptions")
    return ((OSError, TimeoutError, urllib3.HTTPError) if urllib3 is not None
            else (OSError, TimeoutError))

FATAL_WAITING_REASONS = manifests.FATAL_WAITING_REASONS
"""Container waiting reasons that will not fix themselves while `tp connect` waits."""

Progress = Callable[[str, float], None]
"""Receives (one-line message, fraction 0..1 or -1 when unknown)."""


class NamespaceNotFound(ClusterRefused):
    """The namespace does not exist (an error the user fixes: code NOT_FOUND)."""

    code = "NOT_FOUND"


@dataclass(frozen=True)
class Images:
    """Full references of the traffic-manager and traffic-agent images, and pull secrets."""

    manager: str
    agent: str
    pull_secrets: tuple[str, ...] = ()


def choose_images(manager: str = "", agent: str = "", registry: str = "",
                  pull_secrets: tuple[str, ...] = ()) -> Images:
    """The images an install uses (`tp_cluster.manifests.image_ref` rules, the client's
    version as the default tag); a bad value is a one-line ConfigError naming its option."""
    try:
        return Images(
            manifests.image_ref(manager, manifests.MANAGER_IMAGE_NAME, registry,
                                option="--manager-image"),
            manifests.image_ref(agent, manifests.AGENT_IMAGE_NAME, registry,
                                option="--agent-image"),
            tuple(manifests.pull_secret_names(pull_secrets)))
    except manifests.ManifestError as e:
        raise ConfigError(str(e)) from e


def manager_skew(manager_version: str, namespace: str) -> str:
    """One line when the traffic-manager's version is not the client's ("" when equal)."""
    return manifests.version_skew(
        "traffic-manager", manager_version, "client", VERSION,
        f"run `tp uninstall --everything` and `tp connect` to install {VERSION} in "
        f"{namespace}, or use a tp client of {manager_version}")


def kubeconfig_path(explicit: str) -> Path:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KUBECONFIG", "")
    for part in env.split(os.pathsep):
        if part:
            return Path(part).expanduser()
    return Path.home() / ".kube" / "config"


@dataclass(frozen=True)
class DirectTarget:
    """The manager's direct-connect address and the certificate it must present."""

    address: str
    """HOST:PORT of the LoadBalancer."""
    certificate: bytes
    """PEM, read through the API server: the only root the TLS handshake accepts."""
    server_name: str
    """The name in that certificate (the address is an IP it cannot name)."""


@dataclass
class Target:
    """What a connect is about: the kubeconfig, its context and the API server."""

    kubeconfig: Path
    context: str
    server: str
    namespace: str


class Kube:
    """One kubeconfig context, loaded once: by `tp_daemon.kubestatic` when its credentials
    are static (the official client then loads it on first need), else by the official
    client at once."""

    def __init__(self, kubeconfig: str, context: str, namespace: str, *,
                 api_timeout: float) -> None:
        path = kubeconfig_path(kubeconfig)
        if not path.is_file():
            raise ConfigError(f"no kubeconfig at {path}; pass --kubeconfig FILE or set "
                              "KUBECONFIG")
        self.timeout = api_timeout
        self._path = path
        self._cfg: Any = None
        self._api: Any = None
        self._tls: ssl.SSLContext | None = None
        self._official_lock = threading.Lock()
        self.static = kubestatic.read(path, context)
        if self.static is not None:
            self.target = Target(path, self.static.context, self.static.host,
                                 namespace or self.static.namespace or "default")
            return
        chosen, ctx_ns = self._load_official(context)
        self.target = Target(path, chosen, self.cfg.host, namespace or ctx_ns or "default")

    def _load_official(self, context: str) -> tuple[str, str]:
        """Load `context` (else the current one) with the official client; returns the
        context's name and namespace."""
        from kubernetes.config.config_exception import ConfigException

        path = self._path
        try:
            contexts, active = config.list_kube_config_contexts(config_file=str(path))
        except (ConfigException, OSError, ValueError) as e:
            raise ConfigError(f"cannot read kubeconfig {path}: {_first_line(e)}; fix the "
                              "file or pass another with --kubeconfig") from e
        known = {c["name"]: c for c in contexts or []}
        chosen = context or (active or {}).get("name", "")
        if not chosen:
            raise ConfigError(f"kubeconfig {path} has no current context; pass --context "
                              f"(one of: {', '.join(sorted(known)) or 'none defined'})")
        if chosen not in known:
            raise ConfigError(f"context {chosen!r} is not in kubeconfig {path}; pass one of: "
                              f"{', '.join(sorted(known)) or 'none defined'}")
        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=str(path), context=chosen,
                                    client_configuration=cfg, persist_config=False)
        except (ConfigException, OSError, ValueError) as e:
            raise ConfigError(f"cannot use context {chosen!r} of {path}: {_first_line(e)}"
                              ) from e
        cfg.retries = False  # fail fast; the daemon has its own retry loops
        self._cfg = cfg
        self._api = client.ApiClient(cfg)
        return chosen, str(known[chosen].get("context", {}).get("namespace") or "")

    def _official(self) -> None:
        """The official client for this context, loaded once (a static context's first
        official call: an install, a removal)."""
        with self._official_lock:
            if self._api is None:
                self._load_official(self.target.context)

    @property
    def cfg(self) -> Any:
        """The official client's `Configuration` of this context."""
        self._official()
        return self._cfg

    @property
    def api(self) -> Any:
        """The official client's `ApiClient` of this context."""
        self._official()
        return self._api

    def _static_tls(self) -> ssl.SSLContext:
        assert self.static is not None
        if self._tls is None:
            self._tls = self.static.ssl_context()
        return self._tls

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # --- the API server -----------------------------------------------------

    def endpoint(self) -> ApiEndpoint:
        """TLS and auth of this context, for the port-forward WebSocket."""
        from tp_daemon.portforward import ApiEndpoint  # the port-forward's: only when needed

        if self.static is not None:
            return ApiEndpoint(self.static.host, self._static_tls(),
                               {"authorization": f"Bearer {self.static.token}"})
        cfg = self.cfg
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        # auth_settings() is what the official client itself sends (token, refreshed).
        headers = {str(a["key"]): str(a["value"]) for a in cfg.auth_settings().values()
                   if a.get("in") == "header" and a.get("value")}
        return ApiEndpoint(cfg.host, ctx, headers)

    def bearer_token(self) -> str:
        """The token the official client sends for this context (static, or from an exec or
        auth-provider plugin, refreshed when it expires): the traffic-manager reviews it."""
        value = (f"Bearer {self.static.token}" if self.static is not None else
                 str(self.cfg.auth_settings().get("BearerToken", {}).get("value") or ""))
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ConfigError(
                f"context {self.target.context!r} of {self.target.kubeconfig} has no bearer "
                "token (client certificates alone are not supported: the traffic-manager "
                "authenticates callers with TokenReview); use a token or exec-plugin user")
        return token

    def check_reachable(self) -> None:
        """One cheap request, so a wrong server or credentials fail at once."""
        with self._translate("reach the API server"):
            client.VersionApi(self.api).get_code(_request_timeout=self.timeout)

    # --- the traffic-manager ------------------------------------------------

    def manager_deployment_exists(self, namespace: str) -> bool:
        with self._translate(f"read deployment {manifests.NAME} in {namespace}",
                             namespace=namespace):
            try:
                client.AppsV1Api(self.api).read_namespaced_deployment(
                    manifests.NAME, namespace, _request_timeout=self.timeout)
            except _api_errors() as e:
                if e.status == 404:
                    return False
                raise
        return True

    def manager_images_differ(self, namespace: str, wanted: Images) -> str:
        """One line when the installed manager's images are not `wanted` ("" otherwise)."""
        with self._translate(f"read deployment {manifests.NAME} in {namespace}",
                             namespace=namespace):
            deployment = self._get_json(
                f"/apis/apps/v1/namespaces/{namespace}/deployments/{manifests.NAME}", [])
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        agent = next((e.get("value", "") for e in container.get("env") or []
                      if e.get("name") == manifests.ENV_AGENT_IMAGE), "")
        have = (container.get("image", ""), agent)
        if have == (wanted.manager, wanted.agent):
            return ""
        return (f"the traffic-manager in {namespace} runs {have[0]} (agents {have[1] or '?'}), "
                f"not the requested {wanted.manager} ({wanted.agent}): run `tp uninstall "
                "--everything` and connect again to change its images")

    def install_manager(self, namespace: str, progress: Progress,
                        images: Images | None = None, service_type: str = "ClusterIP"
                        ) -> None:
        """Create the manager's objects; on failure delete what this call created."""
        images = images or choose_images()
        try:
            objects = manifests.manager_objects(namespace, image=images.manager,
                                                agent_image=images.agent,
                                                image_pull_secrets=images.pull_secrets,
                                                service_type=service_type)
        except manifests.ManifestError as e:
            raise ConfigError(f"{e} (--manager-namespace)") from e
        created: list[dict[str, Any]] = []
        try:
            for i, obj in enumerate(objects):
                kind, name = obj["kind"], obj["metadata"]["name"]
                progress(f"installing traffic-manager: {kind} {name}", i / (len(objects) + 1))
                if self._create(obj, namespace):
                    created.append(obj)
        except BaseException:
            for obj in reversed(created):
                self._delete_quietly(obj)
            raise

    def _create(self, obj: dict[str, Any], namespace: str) -> bool:
        """Create one object; False when it already existed."""
        kind = obj["kind"]
        what = f"create {kind} {obj['metadata']['name']}"
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        rbac = client.RbacAuthorizationV1Api(self.api)
        kw: dict[str, Any] = {"_request_timeout": self.timeout}
        calls: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: core.create_namespace(obj, **kw),
            "ServiceAccount": lambda: core.create_namespaced_service_account(namespace, obj,
                                                                             **kw),
            "ClusterRole": lambda: rbac.create_cluster_role(obj, **kw),
            "ClusterRoleBinding": lambda: rbac.create_cluster_role_binding(obj, **kw),
            "Role": lambda: rbac.create_namespaced_role(namespace, obj, **kw),
            "RoleBinding": lambda: rbac.create_namespaced_role_binding(namespace, obj, **kw),
            "Deployment": lambda: apps.create_namespaced_deployment(namespace, obj, **kw),
            "Service": lambda: core.create_namespaced_service(namespace, obj, **kw),
        }
        with self._translate(what, namespace=namespace):
            try:
                calls[kind]()
            except _api_errors() as e:
                if e.status == 409:
                    return False
                raise
        return True

    def _delete_quietly(self, obj: dict[str, Any]) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        ns = obj["metadata"].get("namespace", "")
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        rbac = client.RbacAuthorizationV1Api(self.api)
        calls: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: core.delete_namespace(name),
            "ServiceAccount": lambda: core.delete_namespaced_service_account(name, ns),
            "ClusterRole": lambda: rbac.delete_cluster_role(name),
            "ClusterRoleBinding": lambda: rbac.delete_cluster_role_binding(name),
            "Role": lambda: rbac.delete_namespaced_role(name, ns),
            "RoleBinding": lambda: rbac.delete_namespaced_role_binding(name, ns),
            "Deployment": lambda: apps.delete_namespaced_deployment(name, ns),
            "Service": lambda: core.delete_namespaced_service(name, ns),
        }
        try:
            calls[kind]()
        except Exception as e:
            log.warning("could not undo %s %s: %s", kind, name, _first_line(e))

    def ready_manager_pod(self, namespace: str) -> str | None:
        """Name of the newest Ready, not terminating traffic-manager pod, if any."""
        ready = [p for p in self._manager_pods(namespace)
                 if not p["metadata"].get("deletionTimestamp")
                 and p.get("status", {}).get("phase") == "Running"
                 and any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in p["status"].get("conditions") or [])]
        # RFC 3339 timestamps of one server sort as strings
        ready.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        return str(ready[0]["metadata"]["name"]) if ready else None

    def _manager_pods(self, namespace: str) -> list[dict[str, Any]]:
        with self._translate(f"list pods in {namespace}", namespace=namespace):
            pods: list[dict[str, Any]] = self._get_json(
                f"/api/v1/namespaces/{namespace}/pods",
                [("labelSelector", f"app={manifests.NAME}")])["items"]
        return pods

    def direct_target(self, namespace: str) -> DirectTarget | str:
        """Where direct connect reaches the manager (its LoadBalancer address and pinned
        certificate, both read through the API server), or why it cannot (one phrase)."""
        address = self.direct_address(namespace)
        if not isinstance(address, tuple):
            return address
        ca = self.manager_certificate(namespace)
        if isinstance(ca, str):
            return ca
        return DirectTarget(address[0], ca[0], ca[1])

    def direct_address(self, namespace: str) -> tuple[str] | str:
        """(HOST:PORT,) of the manager's LoadBalancer Service, or why there is none."""
        with self._translate(f"read service {manifests.DIRECT_SERVICE} in {namespace}",
                             namespace=namespace):
            service = self._get_json_or_none(
                f"/api/v1/namespaces/{namespace}/services/{manifests.DIRECT_SERVICE}")
        if service is None or service.get("spec", {}).get("type") != "LoadBalancer":
            return (f"the traffic-manager has no LoadBalancer Service "
                    f"({manifests.DIRECT_SERVICE}; an admin installs it with "
                    "`tp connect --manager-service-type LoadBalancer`)")
        ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
        host = ingress.get("ip") or ingress.get("hostname") or ""
        if not host:
            return f"the LoadBalancer Service {manifests.DIRECT_SERVICE} has no address yet"
        port = next((int(p["port"]) for p in service["spec"].get("ports") or []
                     if p.get("name") == "grpc-tls"), manifests.DIRECT_PORT)
        return (f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",)

    def manager_certificate(self, namespace: str) -> tuple[bytes, str] | str:
        """The manager's published certificate and its server name, or why not."""
        with self._translate(f"read configmap {manifests.CA_CONFIGMAP} in {namespace}",
                             namespace=namespace):
            cm = self._get_json_or_none(
                f"/api/v1/namespaces/{namespace}/configmaps/{manifests.CA_CONFIGMAP}")
        data = (cm or {}).get("data") or {}
        if not data.get("ca.crt") or not data.get("server-name"):
            return (f"the traffic-manager has not published its certificate "
                    f"(ConfigMap {manifests.CA_CONFIGMAP})")
        return str(data["ca.crt"]).encode(), str(data["server-name"])

    def _get_json_or_none(self, path: str) -> Any:
        try:
            return self._get_json(path, [])
        except _api_errors() as e:
            if e.status == 404:
                return None
            raise

    def manager_stuck(self, namespace: str) -> str:
        """Why a manager pod cannot start by itself ("" when none is stuck)."""
        for pod in self._manager_pods(namespace):
            for status in pod.get("status", {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FATAL_WAITING_REASONS:
                    detail = f": {waiting['message']}" if waiting.get("message") else ""
                    return (f"traffic-manager pod {pod['metadata']['name']} cannot start "
                            f"({waiting['reason']}{detail}); check `kubectl describe pod -n "
                            f"{namespace} {pod['metadata']['name']}`")
        return ""

    def _get_json(self, path: str, query: list[tuple[str, str]]) -> Any:
        """GET through the official client's transport (auth, TLS, timeouts) as plain JSON.

        `connect` calls this instead of `CoreV1Api`: that module's import builds ~250
        pydantic models (0.5-1 s of CPU) before the first request. A static context's
        GET goes out with the standard library (`kubestatic.get_json`)."""
        if self.static is not None:
            return kubestatic.get_json(self.static, self._static_tls(), path, query,
                                       self.timeout)
        method, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, _request_timeout=self.timeout)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise client.ApiException(http_resp=response, body=data.decode(errors="replace"))
        return json.loads(data)

    def wait_manager_pod(self, namespace: str, timeout: float, progress: Progress,
                         poll: float = 0.2) -> str:
        """Wait until a manager pod is Ready; progress says what it waits for."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            pod = self.ready_manager_pod(namespace)
            if pod:
                return pod
            message = f"waiting for traffic-manager rollout in {namespace} (0/1 ready)"
            if message != last:
                progress(message, -1)
                last = message
            stuck = self.manager_stuck(namespace)
            if stuck:  # waiting longer cannot help: say why now
                raise ManagerError(stuck)
            if time.monotonic() > deadline:
                raise ManagerError(
                    f"traffic-manager in {namespace} not ready after {timeout:.0f} s; check "
                    f"`kubectl get pods -n {namespace}` and its logs")
            time.sleep(poll)

    def remove_manager(self, namespace: str, timeout: float, poll: float = 0.2) -> None:
        """Delete the manager's objects (as `install_manager` made them) and wait until its
        Deployment is gone; objects already absent are fine."""
        try:  # with the direct Service: whichever type it was installed with
            objects = manifests.manager_objects(namespace, service_type="LoadBalancer")
        except manifests.ManifestError as e:
            raise ConfigError(f"{e} (--manager-namespace)") from e
        # the Namespace last: its deletion would otherwise race the others' 404s
        for obj in sorted(objects, key=lambda o: o["kind"] == "Namespace"):
            with self._translate(f"delete {obj['kind']} {obj['metadata']['name']}",
                                 namespace=namespace):
                try:
                    self._delete(obj, namespace)
                except _api_errors() as e:
                    if e.status != 404:
                        raise
        deadline = time.monotonic() + timeout
        while self.manager_deployment_exists(namespace):
            if time.monotonic() > deadline:
                raise ManagerError(f"the traffic-manager in {namespace} was not removed within "
                                   f"{timeout:.0f} s; check `kubectl get all -n {namespace}`")
            time.sleep(poll)

    def _delete(self, obj: dict[str, Any], namespace: str) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        rbac = client.RbacAuthorizationV1Api(self.api)
        # raw replies: the client would parse a delete's Status as the deleted kind
        kw: dict[str, Any] = {"_request_timeout": self.timeout, "_preload_content": False}
        calls: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: core.delete_namespace(name, **kw),
            "ServiceAccount": lambda: core.delete_namespaced_service_account(name, namespace,
                                                                             **kw),
            "ClusterRole": lambda: rbac.delete_cluster_role(name, **kw),
            "ClusterRoleBinding": lambda: rbac.delete_cluster_role_binding(name, **kw),
            "Role": lambda: rbac.delete_namespaced_role(name, namespace, **kw),
            "RoleBinding": lambda: rbac.delete_namespaced_role_binding(name, namespace, **kw),
            "Deployment": lambda: apps.delete_namespaced_deployment(
                name, namespace, propagation_policy="Foreground", **kw),
            "Service": lambda: core.delete_namespaced_service(name, namespace, **kw),
        }
        calls[kind]()

    # --- error translation --------------------------------------------------

    def _translate(self, what: str, namespace: str = "") -> _Translate:
        return _Translate(self, what, namespace)


class _Translate:
    """Context manager: official-client exceptions -> `DaemonError`s, once."""

    def __init__(self, kube: Kube, what: str, namespace: str) -> None:
        self.kube, self.what, self.namespace = kube, what, namespace

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None or isinstance(exc, DaemonError):
            return
        server = self.kube.target.server
        if isinstance(exc, _api_errors()):
            reason = _api_reason(exc)
            if exc.status == 401:
                raise ConfigError(f"the API server at {server} rejected the credentials of "
                                  f"context {self.kube.target.context}; refresh them") from exc
            if exc.status == 403:
                hint = ("; ask for that permission or pass --manager-namespace with a "
                        "namespace where you may install") if self.namespace else ""
                raise ClusterRefused(f"cannot {self.what}: forbidden ({reason}){hint}") from exc
            if exc.status == 0 or exc.status is None:
                raise ClusterUnreachable(f"cannot {self.what} at {server}: {reason}") from exc
            raise ClusterRefused(f"cannot {self.what}: {exc.status} {reason}") from exc
        if isinstance(exc, _network_errors()):
            raise ClusterUnreachable(
                f"cannot reach the API server at {server} ({_network_reason(exc)}); check "
                "that the cluster is up and the context is right") from exc


def _api_reason(e: Any) -> str:
    try:
        return str(json.loads(e.body or "").get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)


def _network_reason(e: BaseException) -> str:
    """"Connection refused", "timed out"... instead of urllib3's nested repr."""
    text = _first_line(e)
    found = re.findall(r"\[Errno -?\d+\] ([^)'\"]+)", text)
    if found:
        return str(found[-1]).strip()
    urllib3 = sys.modules.get("urllib3.exceptions")
    timeouts = (TimeoutError, urllib3.TimeoutError) if urllib3 is not None else (TimeoutError,)
    if isinstance(e, timeouts) or "timed out" in text:
        return "timed out"
    return text


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
