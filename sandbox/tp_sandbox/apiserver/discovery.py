"""Discovery documents: /version, /api, /api/v1, /apis, /apis/<group>/<version>.

These are the legacy documents; `aggregated` builds the `apidiscovery.k8s.io` form of
`/api` and `/apis` (what kubectl asks for first) from the same tables.
"""

from __future__ import annotations

import platform
from typing import Any

from tp_sandbox.apiserver.resources import ResourceType, served
from tp_sandbox.apiserver.resources import groups as _resource_groups

GIT_VERSION = "v1.37.0-sandbox"

# subresource -> (group, version, kind, verbs) of what it serves; group None = parent's.
SUBRESOURCE_KINDS: dict[str, tuple[str | None, str | None, str | None, list[str]]] = {
    "status": (None, None, None, ["get", "patch", "update"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    "log": (None, None, None, ["get"]),
    "exec": (None, None, "PodExecOptions", ["create", "get"]),
    "portforward": (None, None, "PodPortForwardOptions", ["create", "get"]),
    "binding": (None, None, "Binding", ["create"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "finalize": (None, None, None, ["update"]),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
}


# Create-only review APIs the server answers outside the resource table (its review
# handlers): discoverable so `kubectl auth can-i` / `auth whoami` find them.
REVIEWS: tuple[ResourceType, ...] = tuple(
    ResourceType(group, "v1", kind, plural, namespaced, verbs=("create",))
    for group, kind, plural, namespaced in (
        ("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", False),
        ("authentication.k8s.io", "TokenReview", "tokenreviews", False),
        ("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews",
         True),
        ("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
         False),
        ("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False),
        ("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", False),
    ))


def groups() -> dict[str, list[str]]:
    """Every served group -> versions: the resource table's and the review APIs'."""
    out = _resource_groups()
    for r in REVIEWS:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def version() -> dict[str, Any]:
    return {
        "major": "1", "minor": "37", "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
        "compiler": "gc", "platform": f"linux/{platform.machine().replace('x86_64', 'amd64')}",
        "emulationMajor": "1", "emulationMinor": "37",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "36",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    out = []
    for name, versions in groups().items():
        if not name:
            continue
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        out.append({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def api_group(group: str) -> dict[str, Any] | None:
    versions = groups().get(group)
    if not group or versions is None:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
            "preferredVersion": gvs[0]}


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular,
                             "namespaced": rt.namespaced, "kind": rt.kind,
                             "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def _sub_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    group, ver, kind, verbs = SUBRESOURCE_KINDS.get(sub, (None, None, None, ["get"]))
    entry: dict[str, Any] = {"name": f"{rt.plural}/{sub}", "singularName": "",
                             "namespaced": rt.namespaced, "kind": kind or rt.kind,
                             "verbs": verbs}
    if group is not None:
        entry["group"], entry["version"] = group, ver
    return entry


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    rts = [r for r in (*served(), *REVIEWS) if (r.group, r.version) == (group, version)]
    if not rts:
        return None
    resources: list[dict[str, Any]] = []
    for rt in rts:
        resources.append(_resource_entry(rt))
        resources.extend(_sub_entry(rt, s) for s in rt.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}
