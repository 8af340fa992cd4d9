"""Pod Security Admission, as the API server's built-in `PodSecurity` plugin does it.

A namespace chooses its level with labels (`pod-security.kubernetes.io/<mode>: privileged |
baseline | restricted`, and `<mode>-version: latest | v1.N`); `enforce` refuses pods that
violate it, `warn` adds a `Warning` header. For workload resources (Deployments,
ReplicaSets, ... their pod templates) both levels only warn, as a real server does: the
pods their controllers create are the ones refused.

The checks are those of the Pod Security Standards that concern what this project and its
tutorials use, with the real plugin's messages:

- baseline: host namespaces, privileged, non-default capabilities, hostPath volumes,
  hostPort, procMount, seccompProfile Unconfined, forbidden sysctls;
- restricted (on top): allowPrivilegeEscalation, unrestricted capabilities (drop ALL, add
  only NET_BIND_SERVICE), restricted volume types, runAsNonRoot, runAsUser=0,
  seccompProfile RuntimeDefault/Localhost.

Raising a namespace's `enforce` level warns about its existing pods that violate the new
level (they keep running), as the real plugin does.

AppArmor, SELinux options and Windows host processes are not checked (nothing here sets
them). Namespaces without labels are `privileged`, the default of an unconfigured server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

LEVELS = ("privileged", "baseline", "restricted")
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn")

TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}
"""Where each workload kind keeps the pod template the plugin checks (and warns about)."""

_BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
_RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
_RESTRICTED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret")
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"})


class Policy:
    """A level and version, as read from a namespace's labels for one mode."""

    def __init__(self, level: str, version: str = "latest") -> None:
        self.level = level
        self.version = version

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def namespace_policies(namespace: Obj | None) -> dict[str, Policy]:
    """mode -> Policy for the modes whose level is not privileged.

    An unknown level means restricted (the plugin fails closed on a bad label); an
    unknown version means latest.
    """
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    out: dict[str, Policy] = {}
    for mode in MODES:
        level = labels.get(LABEL_PREFIX + mode)
        if level is None:
            continue
        if level not in LEVELS:
            level = "restricted"
        if level == "privileged":
            continue
        version = str(labels.get(f"{LABEL_PREFIX}{mode}-version") or "latest")
        if version != "latest" and not version.startswith("v1."):
            version = "latest"
        out[mode] = Policy(level, version)
    return out


# --- the checks ----------------------------------------------------------------------------


def _quote(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _noun(names: list[str], one: str, many: str) -> str:
    return f"{one if len(names) == 1 else many} {_quote(names)}"


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if isinstance(c, dict)]


def _sc(obj: Obj) -> Obj:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


Check = Callable[[Obj], str]
"""A check returns "" (allowed) or `<reason> (<detail>)`."""


def _host_namespaces(spec: Obj) -> str:
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    return f"host namespaces ({', '.join(used)})" if used else ""


def _privileged(spec: Obj) -> str:
    names = [c["name"] for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not names:
        return ""
    return (f"privileged ({_noun(names, 'container', 'containers')} must not set "
            "securityContext.privileged=true)")


def _added_capabilities(spec: Obj, allowed: frozenset[str]) -> tuple[list[str], list[str]]:
    names, caps = [], []
    for c in _containers(spec):
        bad = [str(a) for a in (_sc(c).get("capabilities") or {}).get("add") or []
               if str(a) not in allowed]
        if bad:
            names.append(c["name"])
            caps.extend(bad)
    return names, _dedupe(caps)


def _capabilities_baseline(spec: Obj) -> str:
    names, caps = _added_capabilities(spec, _BASELINE_CAPABILITIES)
    if not names:
        return ""
    return (f"non-default capabilities ({_noun(names, 'container', 'containers')} must not "
            f"include {_quote(caps)} in securityContext.capabilities.add)")


def _host_path_volumes(spec: Obj) -> str:
    names = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    return f"hostPath volumes ({_noun(names, 'volume', 'volumes')})" if names else ""


def _host_ports(spec: Obj) -> str:
    names, ports = [], []
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            names.append(c["name"])
            ports.extend(used)
    if not names:
        return ""
    ports = _dedupe(ports)
    verb = "uses" if len(names) == 1 else "use"
    noun = "hostPort" if len(ports) == 1 else "hostPorts"
    return (f"hostPort ({_noun(names, 'container', 'containers')} {verb} {noun} "
            f"{', '.join(ports)})")


def _proc_mount(spec: Obj) -> str:
    names = [c["name"] for c in _containers(spec)
             if _sc(c).get("procMount") not in (None, "Default")]
    if not names:
        return ""
    return (f'procMount ({_noun(names, "container", "containers")} must not set '
            'securityContext.procMount to "Unmasked")')


def _unconfined(spec: Obj) -> list[str]:
    details = []
    if (_sc(spec).get("seccompProfile") or {}).get("type") == "Unconfined":
        details.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    names = [c["name"] for c in _containers(spec)
             if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if names:
        details.append(f"{_noun(names, 'container', 'containers')} must not set "
                       'securityContext.seccompProfile.type to "Unconfined"')
    return details


def _seccomp_baseline(spec: Obj) -> str:
    details = _unconfined(spec)
    return f"seccompProfile ({'; '.join(details)})" if details else ""


def _sysctls(spec: Obj) -> str:
    bad = [str(s.get("name")) for s in _sc(spec).get("sysctls") or []
           if s.get("name") not in _SAFE_SYSCTLS]
    return f"forbidden sysctls ({', '.join(bad)})" if bad else ""


def _allow_privilege_escalation(spec: Obj) -> str:
    names = [c["name"] for c in _containers(spec)
             if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return ""
    return (f"allowPrivilegeEscalation != false ({_noun(names, 'container', 'containers')} "
            "must set securityContext.allowPrivilegeEscalation=false)")


def _capabilities_restricted(spec: Obj) -> str:
    no_drop = [c["name"] for c in _containers(spec)
               if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or [])]
    details = []
    if no_drop:
        details.append(f"{_noun(no_drop, 'container', 'containers')} must set "
                       'securityContext.capabilities.drop=["ALL"]')
    names, caps = _added_capabilities(spec, _RESTRICTED_CAPABILITIES)
    if names:
        details.append(f"{_noun(names, 'container', 'containers')} must not include "
                       f"{_quote(caps)} in securityContext.capabilities.add")
    return f"unrestricted capabilities ({'; '.join(details)})" if details else ""


def _restricted_volumes(spec: Obj) -> str:
    names, kinds = [], []
    for v in spec.get("volumes") or []:
        kind = next((k for k in v if k != "name"), "")
        if kind and kind not in _RESTRICTED_VOLUMES:
            names.append(v["name"])
            kinds.append(kind)
    if not names:
        return ""
    kinds = _dedupe(kinds)
    verb = "uses" if len(names) == 1 else "use"
    noun = "restricted volume type" if len(kinds) == 1 else "restricted volume types"
    return (f"restricted volume types ({_noun(names, 'volume', 'volumes')} {verb} {noun} "
            f"{_quote(kinds)})")


def _run_as_non_root(spec: Obj) -> str:
    pod = _sc(spec).get("runAsNonRoot")
    details = []
    if pod is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    explicit_false = [c["name"] for c in _containers(spec) if _sc(c).get("runAsNonRoot") is False]
    if explicit_false:
        details.append(f"{_noun(explicit_false, 'container', 'containers')} must not set "
                       "securityContext.runAsNonRoot=false")
    if pod is not True:
        unset = [c["name"] for c in _containers(spec) if _sc(c).get("runAsNonRoot") is None]
        if unset:
            details.append(f"pod or {_noun(unset, 'container', 'containers')} must set "
                           "securityContext.runAsNonRoot=true")
    return f"runAsNonRoot != true ({'; '.join(details)})" if details else ""


def _run_as_user(spec: Obj) -> str:
    details = []
    if _sc(spec).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    names = [c["name"] for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if names:
        details.append(f"{_noun(names, 'container', 'containers')} must not set runAsUser=0")
    return f"runAsUser=0 ({'; '.join(details)})" if details else ""


def _seccomp_restricted(spec: Obj) -> str:
    valid = ("RuntimeDefault", "Localhost")
    pod_type = (_sc(spec).get("seccompProfile") or {}).get("type")
    details = []
    if pod_type is not None and pod_type not in valid:
        details.append(f'pod must not set securityContext.seccompProfile.type to "{pod_type}"')
    bad = [c for c in _containers(spec)
           if (_sc(c).get("seccompProfile") or {}).get("type") not in (None, *valid)]
    for kind in _dedupe([str(_sc(c)["seccompProfile"]["type"]) for c in bad]):
        names = [c["name"] for c in bad if _sc(c)["seccompProfile"]["type"] == kind]
        details.append(f"{_noun(names, 'container', 'containers')} must not set "
                       f'securityContext.seccompProfile.type to "{kind}"')
    if pod_type not in valid:
        unset = [c["name"] for c in _containers(spec)
                 if (_sc(c).get("seccompProfile") or {}).get("type") is None]
        if unset:
            details.append(f"pod or {_noun(unset, 'container', 'containers')} must set "
                           'securityContext.seccompProfile.type to "RuntimeDefault" or '
                           '"Localhost"')
    return f"seccompProfile ({'; '.join(details)})" if details else ""


# The plugin's order: the baseline checks a level keeps, then the restricted ones (a
# restricted check replaces the baseline check of the same concern).
_BASELINE: tuple[tuple[str, Check], ...] = (
    ("capabilities", _capabilities_baseline),
    ("hostNamespaces", _host_namespaces),
    ("volumes", _host_path_volumes),
    ("hostPorts", _host_ports),
    ("privileged", _privileged),
    ("procMount", _proc_mount),
    ("seccomp", _seccomp_baseline),
    ("sysctls", _sysctls),
)
_RESTRICTED: tuple[tuple[str, Check], ...] = (
    ("allowPrivilegeEscalation", _allow_privilege_escalation),
    ("capabilities", _capabilities_restricted),
    ("volumes", _restricted_volumes),
    ("runAsNonRoot", _run_as_non_root),
    ("runAsUser", _run_as_user),
    ("seccomp", _seccomp_restricted),
)


def violations(spec: Obj, level: str) -> list[str]:
    """`<reason> (<detail>)` for each check of `level` the pod spec fails, in order."""
    if level == "privileged":
        return []
    replaced = {concern for concern, _ in _RESTRICTED} if level == "restricted" else set()
    checks = [c for concern, c in _BASELINE if concern not in replaced]
    if level == "restricted":
        checks += [c for _, c in _RESTRICTED]
    return [v for v in (check(spec) for check in checks) if v]


# --- admission -----------------------------------------------------------------------------


class PodSecurityViolation(Exception):
    """A pod the namespace's enforce level refuses; str() is the Forbidden message."""


def pod_spec_of(kind: str, obj: Obj) -> Obj | None:
    """The pod spec the plugin checks in a Pod or a workload's template (None: none)."""
    if kind == "Pod":
        spec = obj.get("spec")
        return spec if isinstance(spec, dict) else None
    path = TEMPLATE_PATHS.get(kind)
    node: Any = obj
    for key in path or ():
        node = node.get(key) if isinstance(node, dict) else None
    if not path or not isinstance(node, dict):
        return None
    spec = node.get("spec")
    return spec if isinstance(spec, dict) else None


def admit(kind: str, plural: str, name: str, obj: Obj, *, old: Obj | None,
          namespace: Obj | None) -> list[str]:
    """Warnings for `obj` (created, or updated from `old`) in `namespace`.

    Raises `PodSecurityViolation` for a Pod that violates the enforce level. Updates that
    leave the pod spec (template) unchanged are not checked, as the plugin exempts them.
    """
    spec = pod_spec_of(kind, obj)
    if spec is None:
        return []
    if old is not None and pod_spec_of(kind, old) == spec:
        return []
    policies = namespace_policies(namespace)
    warnings: list[str] = []
    enforce = policies.get("enforce")
    if enforce is not None:
        failed = violations(spec, enforce.level)
        if failed and kind == "Pod":
            raise PodSecurityViolation(
                f'{plural} "{name}" is forbidden: violates PodSecurity "{enforce}": '
                + ", ".join(failed))
        if failed:
            warnings.append(f'would violate PodSecurity "{enforce}": ' + ", ".join(failed))
    warn = policies.get("warn")
    if warn is not None and warn != enforce:
        failed = violations(spec, warn.level)
        if failed:
            warnings.append(f'would violate PodSecurity "{warn}": ' + ", ".join(failed))
    return warnings


def _reason(violation: str) -> str:
    return violation.split(" (", 1)[0]


def namespace_warnings(namespace: Obj, old: Obj | None, pods: list[Obj]) -> list[str]:
    """Warnings when a namespace's enforce policy changes and existing pods violate it."""
    new_policy = namespace_policies(namespace).get("enforce")
    if new_policy is None or (old is not None
                              and namespace_policies(old).get("enforce") == new_policy):
        return []
    by_reasons: dict[str, list[str]] = {}
    for pod in pods:
        spec = pod.get("spec")
        if not isinstance(spec, dict) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        failed = violations(spec, new_policy.level)
        if failed:
            reasons = ", ".join(_reason(v) for v in failed)
            by_reasons.setdefault(reasons, []).append(str(pod["metadata"]["name"]))
    if not by_reasons:
        return []
    name = (namespace.get("metadata") or {}).get("name")
    warnings = [f'existing pods in namespace "{name}" violate the new PodSecurity enforce '
                f'level "{new_policy}"']
    for reasons, names in by_reasons.items():
        others = len(names) - 1
        who = names[0] + (f" (and {others} other pod{'s' if others > 1 else ''})"
                          if others else "")
        warnings.append(f"{who}: {reasons}")
    return warnings
