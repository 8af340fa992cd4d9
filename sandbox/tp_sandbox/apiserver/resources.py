"""The resource types the sandbox API server serves: one registry for routing,
discovery, OpenAPI, validation and patching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (e.g. apps/v1 deployments)."""

    group: str  # "" for core
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "log", "exec", "portforward", ...
    verbs: tuple[str, ...] = field(default_factory=lambda: tuple(_VERBS))
    custom: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """For a CustomResourceDefinition's type: its `schema` (openAPIV3Schema), printer
    `columns` and the CRD's `crd` name; None for built-in types."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def definition_name(self) -> str:
        """Name of its schema in the Kubernetes OpenAPI definitions (a custom type's is
        named as upstream publishes it: the reversed group, version and kind)."""
        if self.custom is not None:
            return ".".join([*reversed(self.group.split(".")), self.version, self.kind])
        group = self.group or "core"
        if group == "discovery.k8s.io":
            group = "discovery"
        elif group == "rbac.authorization.k8s.io":
            group = "rbac"
        elif group == "coordination.k8s.io":
            group = "coordination"
        elif group == "apiextensions.k8s.io":
            return ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions."
                    f"{self.version}.{self.kind}")
        return f"io.k8s.api.{group}.{self.version}.{self.kind}"


def _r(group: str, version: str, kind: str, plural: str, namespaced: bool, **kw: object
       ) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, **kw)  # type: ignore[arg-type]


RESOURCES: tuple[ResourceType, ...] = (
    _r("", "v1", "Namespace", "namespaces", False, short_names=("ns",),
       subresources=("status", "finalize"),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "Pod", "pods", True, short_names=("po",), categories=("all",),
       subresources=("status", "log", "exec", "portforward", "binding", "eviction")),
    _r("", "v1", "Service", "services", True, short_names=("svc",), categories=("all",),
       subresources=("status",),
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update",
              "watch")),
    _r("", "v1", "Endpoints", "endpoints", True, short_names=("ep",)),
    _r("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=("sa",),
       subresources=("token",)),
    _r("", "v1", "Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _r("", "v1", "Event", "events", True, short_names=("ev",)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True,
       short_names=("pvc",), subresources=("status",)),
    _r("apps", "v1", "Deployment", "deployments", True, short_names=("deploy",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, short_names=("rs",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, short_names=("sts",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, short_names=("ds",),
       categories=("all",), subresources=("status",)),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    _r("batch", "v1", "Job", "jobs", True, categories=("all",), subresources=("status",)),
    _r("batch", "v1", "CronJob", "cronjobs", True, short_names=("cj",), categories=("all",),
       subresources=("status",)),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
       False, short_names=("crd", "crds"), categories=("api-extensions",),
       subresources=("status",)),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
)


_CUSTOM: dict[str, tuple[ResourceType, ...]] = {}


def register_custom(crd_name: str, types: tuple[ResourceType, ...]) -> None:
    """Serve (or re-serve, after an update) the types a CustomResourceDefinition defines."""
    _CUSTOM[crd_name] = types


def unregister_custom(crd_name: str) -> None:
    _CUSTOM.pop(crd_name, None)


def served() -> tuple[ResourceType, ...]:
    """The built-in types followed by every custom one currently defined."""
    return RESOURCES + tuple(r for types in _CUSTOM.values() for r in types)


def groups() -> dict[str, list[str]]:
    """group name -> versions served ("" is the core group)."""
    out: dict[str, list[str]] = {}
    for r in served():
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    for r in served():
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for r in served():
        if (r.api_version, r.kind) == (api_version, kind):
            return r
    return None
