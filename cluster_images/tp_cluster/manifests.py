"""The traffic-manager's Kubernetes objects, as plain dicts, and the image references.

Used by the workstation daemon (install on first connect, removal on
`tp uninstall --everything`) and by tests. The ClusterRole is least privilege for
what the manager does:

- read pods, services, endpoints, nodes, namespaces (cluster info, DNS, workloads);
- read pods/log, for `tp gather-logs` (the traffic-agent containers' logs);
- create services, only ever with dryRun, to discover the service CIDR from the
  API server's refusal of an out-of-range clusterIP;
- read and update (PUT with resourceVersion) Deployments and Services, to inject
  the traffic-agent and to restore them exactly on uninstall.

Its ClusterRole reads no configmaps or secrets: the agent container gets copies of the
app's env/envFrom, so the kubelet resolves them (see `tp_cluster.injector`). A Role in
its own namespace lets it keep its TLS Secret and publish the certificate in a
ConfigMap (direct connect, `tp_cluster.manager.tls`), which every authenticated user
may read.

Images come from any registry: `image_ref` turns what a user gives (`--registry`,
`--manager-image`, `--agent-image`) into a full reference whose tag defaults to this
client's version. The agent image and its pull secrets travel in the manager
Deployment's env (`TP_AGENT_IMAGE`, `TP_AGENT_IMAGE_PULL_SECRETS`), so the manager
injects agents from the same registry it was installed from.

Pod Security: the manager pod meets the "restricted" profile (non-root uid
`RUN_AS_USER`, no privilege escalation, every capability dropped, the runtime's
default seccomp profile, a read-only root filesystem), so it runs in namespaces
labelled `pod-security.kubernetes.io/enforce: restricted`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from tp_protocol import VERSION

from tp_cluster.errors import ClusterError

NAME = "traffic-manager"
"""Name of the ServiceAccount, Deployment and Service; label `app=traffic-manager`."""

DEFAULT_REGISTRY = "ghcr.io/tp-jupyter"
"""Where the released images live; `--registry` / `Settings.connect.image_registry` replace it."""

MANAGER_IMAGE_NAME = NAME
AGENT_IMAGE_NAME = "traffic-agent"
IMAGE_REPOSITORY = f"{DEFAULT_REGISTRY}/{MANAGER_IMAGE_NAME}"
AGENT_IMAGE_REPOSITORY = f"{DEFAULT_REGISTRY}/{AGENT_IMAGE_NAME}"

RUN_AS_USER = 10001
"""The non-root uid (and gid) of both images (the Dockerfiles' `USER`)."""

ENV_AGENT_IMAGE = "TP_AGENT_IMAGE"
ENV_AGENT_PULL_SECRETS = "TP_AGENT_IMAGE_PULL_SECRETS"
"""Manager env: comma-separated imagePullSecrets the injected pods get ("" = none)."""
FATAL_WAITING_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
    "CrashLoopBackOff"})
"""Container waiting reasons that will not fix themselves while a rollout is waited for
(the manager's install, an agent's injection)."""
GRPC_PORT = 8081
"""The manager's gRPC port (container and Service)."""
DIRECT_PORT = 8443
"""The manager's TLS gRPC port for direct connect (container port `grpc-tls`, and the
port of the LoadBalancer Service `DIRECT_SERVICE`)."""
RAW_DIAL_PORT = 8444
"""The manager's raw dial port for direct connect (container port `raw-tls`, and a port of
`DIRECT_SERVICE`): TLS with the same certificate, one tunneled connection per TLS
connection (manager.proto RawDialHeader). A second port because gRPC's server cannot hand
a connection to other code by ALPN."""
DIRECT_SERVICE = f"{NAME}-direct"
"""The Service that exposes only `DIRECT_PORT` outside the cluster (`--manager-service-type
LoadBalancer`): the plaintext port that agents use stays inside."""
TLS_SECRET = f"{NAME}-tls"
"""Secret (type kubernetes.io/tls) with the manager's self-signed certificate and key."""
CA_CONFIGMAP = f"{NAME}-ca"
"""ConfigMap that publishes the manager's certificate (`ca.crt`) and the name it was made
for (`server-name`): daemons read it through the API server and pin it."""
CA_READER = f"{NAME}-ca-reader"
"""Role + RoleBinding: every authenticated user may read `CA_CONFIGMAP` (a public cert)."""
SERVICE_TYPES = ("ClusterIP", "LoadBalancer")
"""What `--manager-service-type` accepts."""

LABELS = {"app": NAME, "app.kubernetes.io/part-of": "tp-jupyter"}
MANAGED_BY = {"app.kubernetes.io/managed-by": "tp-jupyter"}
VERSION_ANNOTATION = "tp-jupyter.io/version"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
# docker reference grammar, simplified: [host[:port]/]path[:tag][@digest]
_IMAGE_REF = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+:[a-f0-9]{32,})?")
_REGISTRY = re.compile(r"[a-zA-Z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")


class ManifestError(ClusterError, ValueError):
    """A manifest parameter is unusable (the message says which and why)."""


def cluster_role_name(namespace: str) -> str:
    """Cluster-scoped names carry the namespace so that two installs never collide."""
    return f"{NAME}-{namespace}"


def image_ref(given: str, name: str, registry: str = "", version: str = VERSION,
              option: str = "--image") -> str:
    """A full image reference from what a user gave.

    `given` "" is `<registry>/<name>:<version>`; a bare name (`my-manager`, `my-manager:2`)
    goes under `registry`; anything with a `/` is a full repository and used as it is.
    A missing tag is `version` (the client's), so client and images match by default.
    `option` names the setting in the error message.
    """
    registry = (registry or DEFAULT_REGISTRY).strip().rstrip("/")
    if not _REGISTRY.fullmatch(registry):
        raise ManifestError(f"registry {registry!r} is not a registry or repository prefix: "
                            "use HOST[:PORT][/PATH], e.g. registry.example.com/team (--registry)")
    ref = given.strip() or name
    if "/" not in ref:
        ref = f"{registry}/{ref}"
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref = f"{ref}:{version}"
    if not _IMAGE_REF.fullmatch(ref):
        raise ManifestError(f"{given!r} is not an image reference: use "
                            f"[REGISTRY/]NAME[:TAG] ({option})")
    return ref


def image_tag(image: str) -> str:
    """The tag of an image reference ("" for none or a digest only)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def manager_image(version: str = VERSION, registry: str = "") -> str:
    return image_ref("", MANAGER_IMAGE_NAME, registry, version)


def agent_image(version: str = VERSION, registry: str = "") -> str:
    """The traffic-agent image the manager injects (same version as the manager)."""
    return image_ref("", AGENT_IMAGE_NAME, registry, version)


_agent_image_of = agent_image  # manager_objects' parameter of that name hides it


def pull_secret_names(given: list[str] | tuple[str, ...] | str) -> list[str]:
    """imagePullSecrets names from a list or a comma-separated string, checked."""
    names = given.split(",") if isinstance(given, str) else list(given)
    out = [n.strip() for n in names if n.strip()]
    for n in out:
        if len(n) > 253 or not _DNS_SUBDOMAIN.fullmatch(n):
            raise ManifestError(f"image pull secret {n!r} is not a Secret name: use lower-case "
                                "letters, digits, '-' and '.' (--image-pull-secret)")
    return out


def agent_pull_secrets_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """The manager's `TP_AGENT_IMAGE_PULL_SECRETS`, as the injector wants them."""
    env = os.environ if environ is None else environ
    return pull_secret_names(env.get(ENV_AGENT_PULL_SECRETS, ""))


def version_skew(component: str, theirs: str, other: str, ours: str, fix: str) -> str:
    """One line: `<component> <theirs> differs from <other> <ours>: <fix>` ("" when the
    versions match or one is unknown)."""
    if not theirs or not ours or theirs == ours:
        return ""
    return f"{component} {theirs} differs from {other} {ours}: {fix}"


def restricted_container_security(run_as_user: int | None = RUN_AS_USER,
                                  add_capabilities: list[str] | None = None,
                                  read_only_root: bool = True) -> dict[str, Any]:
    """A container securityContext that meets Pod Security "restricted" by itself."""
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], **({"add": add_capabilities}
                                             if add_capabilities else {})},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
    return context


POD_SECURITY_LABELS = {"pod-security.kubernetes.io/enforce": "restricted",
                       "pod-security.kubernetes.io/enforce-version": "latest"}
"""The manager's Namespace enforces Pod Security "restricted" on its own pods."""


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**LABELS, **MANAGED_BY},
        "annotations": {VERSION_ANNOTATION: VERSION},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _namespace_meta(namespace: str) -> dict[str, Any]:
    meta = _meta(namespace)
    meta["labels"].update(POD_SECURITY_LABELS)
    return meta


def manager_objects(
    namespace: str = "ambassador",
    version: str = VERSION,
    image: str | None = None,
    log_level: str = "INFO",
    *,
    agent_image: str | None = None,
    image_pull_secrets: list[str] | tuple[str, ...] = (),
    service_type: str = "ClusterIP",
) -> list[dict[str, Any]]:
    """Every object of a traffic-manager install, in creation order.

    `image` / `agent_image` are full references (see `image_ref`; default: ours of
    `version`); `image_pull_secrets` name Secrets in the manager's namespace (and, for
    the agents, in each intercepted workload's namespace). `service_type` LoadBalancer
    adds the Service `DIRECT_SERVICE` (direct connect over TLS, past the API server).
    Deleting in reverse order removes the install (the Namespace last, which also
    takes anything left inside it).
    """
    if len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
        raise ManifestError(
            f"manager namespace {namespace!r} is not a DNS label: use lower-case letters, "
            "digits and '-'")
    if service_type not in SERVICE_TYPES:
        raise ManifestError(f"service type {service_type!r} is not one of "
                            f"{', '.join(SERVICE_TYPES)} (--manager-service-type)")
    image = image or manager_image(version)
    agent = agent_image or _agent_image_of(version)
    secrets = pull_secret_names(image_pull_secrets)
    role = cluster_role_name(namespace)
    pod_labels = dict(LABELS)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _namespace_meta(namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role),
            "rules": [
                # pods: rollout progress, agent pods and their owners (agent identity);
                # services/endpoints: what an intercept routes; nodes: pod CIDRs;
                # namespaces: ListWorkloads' NOT_FOUND
                {"apiGroups": [""],
                 "resources": ["pods", "services", "endpoints", "nodes", "namespaces"],
                 "verbs": ["get", "list", "watch"]},
                # create: dryRun only, the refusal of clusterIP 1.1.1.1 names the service
                # CIDR; update: a numeric targetPort is taken over (and given back)
                {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "update"]},
                # `tp gather-logs`: the traffic-agent containers' logs (read only)
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                # the three kinds an agent is injected into (and restored); get replicasets
                # also finds the Deployment that owns an arriving agent's pod
                {"apiGroups": ["apps"], "resources": ["deployments", "replicasets",
                                                      "statefulsets"],
                 "verbs": ["get", "list", "watch", "update"]},
                # a ReplicaSet never replaces its pods: they are deleted to take the agent
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["deletecollection"]},
                # every gRPC call carries the caller's token: who is it (TokenReview)
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                 "verbs": ["create"]},
                # may that caller change the workload it intercepts (SubjectAccessReview)
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                 "verbs": ["create"]},
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
        # in its own namespace only: its TLS Secret and the ConfigMap publishing the cert
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(NAME, namespace),
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [TLS_SECRET],
                 "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"],
                 "resourceNames": [CA_CONFIGMAP], "verbs": ["get", "update"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(NAME, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
        # daemons pin the manager's certificate they read here through the API server
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(CA_READER, namespace),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "resourceNames": [CA_CONFIGMAP], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(CA_READER, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": CA_READER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": "system:authenticated"}],
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
                        **({"imagePullSecrets": [{"name": n} for n in secrets]}
                           if secrets else {}),
                        "securityContext": {
                            "runAsNonRoot": True, "runAsUser": RUN_AS_USER,
                            "runAsGroup": RUN_AS_USER,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": NAME,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "grpc", "containerPort": GRPC_PORT,
                                       "protocol": "TCP"},
                                      {"name": "grpc-tls", "containerPort": DIRECT_PORT,
                                       "protocol": "TCP"},
                                      {"name": "raw-tls", "containerPort": RAW_DIAL_PORT,
                                       "protocol": "TCP"}],
                            "env": [
                                {"name": "TP_MANAGER_NAMESPACE",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "TP_LOG_LEVEL", "value": log_level},
                                {"name": ENV_AGENT_IMAGE, "value": agent},
                                *([{"name": ENV_AGENT_PULL_SECRETS, "value": ",".join(secrets)}]
                                  if secrets else []),
                            ],
                            "securityContext": restricted_container_security(),
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
        *([direct_service(namespace)] if service_type == "LoadBalancer" else []),
    ]


def direct_service(namespace: str) -> dict[str, Any]:
    """The LoadBalancer Service of direct connect: the TLS ports only (gRPC, raw dials)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(DIRECT_SERVICE, namespace),
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": NAME},
            "ports": [{"name": "grpc-tls", "port": DIRECT_PORT, "targetPort": "grpc-tls",
                       "protocol": "TCP"},
                      {"name": "raw-tls", "port": RAW_DIAL_PORT, "targetPort": "raw-tls",
                       "protocol": "TCP"}],
        },
    }
