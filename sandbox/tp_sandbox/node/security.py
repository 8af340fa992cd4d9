"""A container's securityContext as process credentials (what the runtime would apply).

`process_security(pod, container, image_user)` merges the pod's and the container's
securityContext the way the kubelet does (the container's fields win) and returns what
the launcher (`tp_sandbox.node.enter`) applies before it `exec`s the command:

- the uid (`runAsUser`, else the image's user), gid (`runAsGroup`, else 0) and
  supplementary groups (`fsGroup`, `supplementalGroups`);
- `runAsNonRoot: true` with uid 0 refuses to start the container, with the kubelet's
  message (`CreateContainerConfigError`);
- capabilities: with `drop: [ALL]` or a non-root uid the process keeps only the added
  ones (a non-root process gets them as ambient capabilities, so `NET_BIND_SERVICE`
  really lets it bind a port below 1024); a root container without `capabilities`
  keeps the node's set, as before;
- `allowPrivilegeEscalation: false` sets no_new_privs;
- `readOnlyRootFilesystem: true` remounts `/` read-only in the container's own mount
  namespace (volumes, resolv.conf and hosts stay as mounted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE")
"""Linux capability names in number order (CAP_CHOWN is 0)."""


class ContainerConfigError(Exception):
    """The container cannot be started as configured (`CreateContainerConfigError`)."""


@dataclass(frozen=True)
class ProcessSecurity:
    """What the launcher applies; `uid` None leaves the process as it is (root)."""

    uid: int | None = None
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: tuple[int, ...] | None = None
    """Capability numbers the process keeps (None: unchanged)."""
    no_new_privs: bool = False
    read_only_root: bool = False

    def spec(self) -> Obj:
        """The launcher's `security` entry (JSON)."""
        return {"uid": self.uid, "gid": self.gid, "groups": list(self.groups),
                "capabilities": None if self.capabilities is None else list(self.capabilities),
                "no_new_privs": self.no_new_privs, "read_only_root": self.read_only_root}


def _cap_number(name: str) -> int | None:
    name = name.upper().removeprefix("CAP_")
    return CAPABILITIES.index(name) if name in CAPABILITIES else None


def process_security(pod: Obj, container: Obj, image_user: int = 0) -> ProcessSecurity:
    """The credentials of `container` of `pod` (see the module docstring)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return sc[key] if sc.get(key) is not None else pod_sc.get(key)

    run_as = pick("runAsUser")
    uid = int(run_as) if run_as is not None else image_user
    if pick("runAsNonRoot") is True and uid == 0:
        meta = pod.get("metadata") or {}
        raise ContainerConfigError(
            f'container has runAsNonRoot and image will run as root (pod: '
            f'"{meta.get("name")}_{meta.get("namespace")}({meta.get("uid")})", '
            f'container: {container.get("name")})')
    gid = int(pick("runAsGroup") or 0)
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        groups.append(int(pod_sc["fsGroup"]))
    caps_spec = sc.get("capabilities") or {}
    drop = {str(c).upper().removeprefix("CAP_") for c in caps_spec.get("drop") or []}
    added = [n for n in (_cap_number(str(c)) for c in caps_spec.get("add") or [])
             if n is not None]
    keep: tuple[int, ...] | None = None
    if sc.get("privileged") is True:
        keep = None
    elif "ALL" in drop or uid != 0:
        keep = tuple(sorted(set(added)))  # an added capability wins over a dropped one
    elif caps_spec:
        keep = tuple(n for n, name in enumerate(CAPABILITIES)
                     if name not in drop or n in added)
    return ProcessSecurity(
        uid=None if uid == 0 and not (pick("runAsGroup") or groups) else uid,
        gid=gid, groups=tuple(dict.fromkeys(groups)), capabilities=keep,
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        read_only_root=sc.get("readOnlyRootFilesystem") is True)
