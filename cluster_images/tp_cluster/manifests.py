"""The traffic-manager's Kubernetes objects, as plain dicts (a pure function).

Used by the workstation daemon (install on first connect, removal on
`tp uninstall --everything`) and by tests. The ClusterRole is least privilege for
what the manager does:

- read pods, services, endpoints, nodes, namespaces (cluster info, DNS, workloads);
- create services, only ever with dryRun, to discover the service CIDR from the
  API server's refusal of an out-of-range clusterIP;
- read and update (PUT with resourceVersion) Deployments and Services, to inject
  the traffic-agent and to restore them exactly on uninstall.

It reads no configmaps or secrets: the agent container gets copies of the app's
env/envFrom, so the kubelet resolves them (see `tp_cluster.injector`).
"""

from __future__ import annotations

import re
from typing import Any

from tp_protocol import VERSION

from tp_cluster.errors import ClusterError

NAME = "traffic-manager"
"""Name of the ServiceAccount, Deployment and Service; label `app=traffic-manager`."""

IMAGE_REPOSITORY = "ghcr.io/tp-jupyter/traffic-manager"
AGENT_IMAGE_REPOSITORY = "ghcr.io/tp-jupyter/traffic-agent"
FATAL_WAITING_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
    "CrashLoopBackOff"})
"""Container waiting reasons that will not fix themselves while a rollout is waited for
(the manager's install, an agent's injection)."""

GRPC_PORT = 8081
"""The manager's gRPC port (container and Service)."""

LABELS = {"app": NAME, "app.kubernetes.io/part-of": "tp-jupyter"}
MANAGED_BY = {"app.kubernetes.io/managed-by": "tp-jupyter"}
VERSION_ANNOTATION = "tp-jupyter.io/version"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class ManifestError(ClusterError, ValueError):
    """A manifest parameter is unusable (the message says which and why)."""


def cluster_role_name(namespace: str) -> str:
    """Cluster-scoped names carry the namespace so that two installs never collide."""
    return f"{NAME}-{namespace}"


def manager_image(version: str = VERSION) -> str:
    return f"{IMAGE_REPOSITORY}:{version}"


def agent_image(version: str = VERSION) -> str:
    """The traffic-agent image the manager injects (same version as the manager)."""
    return f"{AGENT_IMAGE_REPOSITORY}:{version}"


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**LABELS, **MANAGED_BY},
        "annotations": {VERSION_ANNOTATION: VERSION},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def manager_objects(
    namespace: str = "ambassador",
    version: str = VERSION,
    image: str | None = None,
    log_level: str = "INFO",
) -> list[dict[str, Any]]:
    """Every object of a traffic-manager install, in creation order.

    Deleting in reverse order removes the install (the Namespace last, which also
    takes anything left inside it).
    """
    if len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
        raise ManifestError(
            f"manager namespace {namespace!r} is not a DNS label: use lower-case letters, "
            "digits and '-'")
    image = image or manager_image(version)
    role = cluster_role_name(namespace)
    pod_labels = dict(LABELS)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role),
            "rules": [
                {"apiGroups": [""],
                 "resources": ["pods", "services", "endpoints", "nodes", "namespaces"],
                 "verbs": ["get", "list", "watch"]},
                # create: dryRun only, the refusal of clusterIP 1.1.1.1 names the service
                # CIDR; update: a numeric targetPort is taken over (and given back)
                {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "update"]},
                {"apiGroups": ["apps"], "resources": ["deployments"],
                 "verbs": ["get", "list", "watch", "update"]},
                # ListWorkloads shows bare ReplicaSets and StatefulSets as not interceptable
                {"apiGroups": ["apps"], "resources": ["replicasets", "statefulsets"],
                 "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(role),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(NAME, namespace),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": NAME}},
                "template": {
                    "metadata": {"labels": pod_labels,
                                 "annotations": {VERSION_ANNOTATION: version}},
                    "spec": {
                        "serviceAccountName": NAME,
                        "terminationGracePeriodSeconds": 10,
                        "containers": [{
                            "name": NAME,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "grpc", "containerPort": GRPC_PORT,
                                       "protocol": "TCP"}],
                            "env": [
                                {"name": "TP_MANAGER_NAMESPACE",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "TP_LOG_LEVEL", "value": log_level},
                            ],
                            # the server listens only once cluster info is discovered
                            "readinessProbe": {
                                "tcpSocket": {"port": GRPC_PORT},
                                "periodSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                        }],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(NAME, namespace),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": NAME},
                "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc",
                           "protocol": "TCP"}],
            },
        },
    ]
