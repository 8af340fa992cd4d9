"""The sandbox as a team's cluster: the admin installs the traffic-manager once, the
developers (laptop K acts as `kubeconfig.USERS[K-1]`, ClusterRole `edit`) only use it.

A developer's `tp connect` cannot install the manager (cluster-scoped RBAC), exactly as
on a real cluster, so `up` (with a node) does the admin's part with the admin kubeconfig:
the objects of `tp_cluster.manifests.manager_objects` (the ones `tp connect` would
create), then waits until the manager Deployment is available.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tp_cluster import manifests
from tp_protocol.settings import get_settings

from tp_sandbox import kubeconfig as kc
from tp_sandbox.errors import SandboxStartError
from tp_sandbox.paths import Instance


def install_manager(instance: Instance, progress: Callable[[str], None],
                    namespace: str | None = None) -> bool:
    """Create the traffic-manager as the admin (idempotent) and wait until it is
    available; True when this call created its Deployment."""
    from kubernetes import client

    s = get_settings()
    namespace = namespace or s.connect.manager_namespace
    created = False
    with kc.api_client(instance.kubeconfig) as api:
        apps = client.AppsV1Api(api)
        kw: dict[str, Any] = {"_request_timeout": s.sandbox.status_probe_timeout}
        deadline = time.monotonic() + s.sandbox.manager_install_timeout
        _until_not_terminating(client.CoreV1Api(api), namespace, deadline, kw)
        for obj in manifests.manager_objects(namespace):
            kind, name = obj["kind"], obj["metadata"]["name"]
            try:
                _create(api, namespace, obj, kw)
            except client.ApiException as e:
                if e.status != 409:
                    raise SandboxStartError(f"the admin could not create the traffic-manager's "
                                            f"{kind} {name}: {e.status} {e.reason}") from e
                continue
            created = created or kind == "Deployment"
        if created:
            progress(f"installed the traffic-manager in namespace {namespace} as the admin "
                     "(the laptops' developers may not)")
        while True:
            d = apps.read_namespaced_deployment(manifests.NAME, namespace, **kw)
            if d.status and (d.status.available_replicas or 0) >= 1:
                return created
            if time.monotonic() >= deadline:
                raise SandboxStartError(
                    f"the traffic-manager in {namespace} was not available after "
                    f"{s.sandbox.manager_install_timeout:.0f}s; see `kubectl -n {namespace} "
                    "describe pods` with the admin kubeconfig")
            time.sleep(s.sandbox.poll_interval)  # polling the API server, as kubectl wait


def _until_not_terminating(core: Any, namespace: str, deadline: float,
                           kw: dict[str, Any]) -> None:
    """A namespace being deleted (an uninstall a moment ago) refuses new objects with 403,
    as on a real cluster: wait until it is gone (or was never terminating)."""
    from kubernetes import client

    while True:
        try:
            phase = core.read_namespace(namespace, **kw).status.phase
        except client.ApiException as e:
            if e.status == 404:
                return
            raise SandboxStartError(f"the admin could not read namespace {namespace}: "
                                    f"{e.status} {e.reason}") from e
        if phase != "Terminating":
            return
        if time.monotonic() >= deadline:
            raise SandboxStartError(f"namespace {namespace} was still being deleted after "
                                    f"{get_settings().sandbox.manager_install_timeout:.0f}s")
        time.sleep(get_settings().sandbox.poll_interval)  # as `kubectl wait --for=delete`


def _create(api: Any, namespace: str, obj: Any, kw: dict[str, Any]) -> None:
    """Create one manifest object (a dict: the client serializes it as it is)."""
    from kubernetes import client

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    kind = obj["kind"]
    if kind == "Namespace":
        core.create_namespace(obj, **kw)
    elif kind == "ServiceAccount":
        core.create_namespaced_service_account(namespace, obj, **kw)
    elif kind == "ClusterRole":
        rbac.create_cluster_role(obj, **kw)
    elif kind == "ClusterRoleBinding":
        rbac.create_cluster_role_binding(obj, **kw)
    elif kind == "Role":
        rbac.create_namespaced_role(obj["metadata"].get("namespace", namespace), obj, **kw)
    elif kind == "RoleBinding":
        rbac.create_namespaced_role_binding(obj["metadata"].get("namespace", namespace), obj,
                                            **kw)
    elif kind == "Deployment":
        apps.create_namespaced_deployment(namespace, obj, **kw)
    elif kind == "Service":
        core.create_namespaced_service(namespace, obj, **kw)
    else:
        raise SandboxStartError(f"the traffic-manager's manifests name an unknown kind {kind}")


def laptop_user(laptop_users: list[str], k: int) -> str:
    """Who laptop K's kubeconfig acts as: the K-th of `laptop_users` when given, else
    the K-th developer (`kubeconfig.USERS`); `kubeconfig.ADMIN` is the admin."""
    if k <= len(laptop_users):
        return laptop_users[k - 1]
    return kc.USERS[k - 1] if k <= len(kc.USERS) else kc.ADMIN
