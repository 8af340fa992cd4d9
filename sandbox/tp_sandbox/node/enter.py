"""Container launcher: ``python -m tp_sandbox.node.enter SPEC.json``.

Runs as the container's own process and then `exec`s the container's command, so the
kubelet's child *is* the container (its pid and process group are what gets signalled).
Before the exec it enters the pod's network namespace, makes a private mount (and UTS)
namespace with `/` as a slave (host mounts still propagate in, ours never leak out),
bind-mounts resolv.conf, hosts and the volumes, and sets the hostname.

Doing this in a fresh interpreter instead of a `preexec_fn` keeps fork-unsafe work
(locks, allocation) out of the multi-threaded kubelet.

SPEC: {"netns": path, "hostname": str, "workdir": str, "argv": [...], "env": {...},
       "mounts": [{"source": path, "target": path, "readonly": bool}],
       "security": {"uid": int|null, "gid": int, "groups": [int], "capabilities": [int]|null,
                    "no_new_privs": bool, "read_only_root": bool}}
(see tp_sandbox.node.security)
A non-root container must still reach the interpreter (our images' Python is the
host's, which may live under a private directory such as /root): `expose_interpreter`
covers each such directory, in the container's own mount namespace only, with a tmpfs
that holds just the bind-mounted entries the interpreter needs (the image would
provide them); nothing else of that directory becomes visible.
The credentials are applied last, after the mounts (which need root): the bounding set
is reduced, the uid changes keeping the capabilities to keep, and those are raised as
ambient capabilities so that a non-root command still has them after `exec`.
Exit codes of its own: 127 command not found, 128 setup failed (message on stderr).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import netns

CLONE_NEWUTS = 0x04000000
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
EXIT_NOT_FOUND = 127
EXIT_SETUP = 128


def prepare(spec: dict[str, Any]) -> None:
    """Enter the pod's namespaces and mount what the container sees."""
    fd = os.open(spec["netns"], os.O_RDONLY)
    try:
        netns.setns(fd, netns.CLONE_NEWNET)
    finally:
        os.close(fd)
    netns.unshare(netns.CLONE_NEWNS | CLONE_NEWUTS)
    netns.mount("none", "/", None, netns.MS_REC | netns.MS_SLAVE)
    for m in spec.get("mounts", []):
        netns.mount(m["source"], m["target"], None, netns.MS_BIND | netns.MS_REC)
        if m.get("readonly"):
            netns.mount("none", m["target"], None,
                        netns.MS_BIND | netns.MS_REMOUNT | netns.MS_RDONLY)
    hostname = spec.get("hostname", "").encode()
    if hostname:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.sethostname(hostname, len(hostname)) != 0:
            raise OSError(ctypes.get_errno(), "sethostname")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def apply_security(security: dict[str, Any]) -> None:
    """Become the container's user with only the capabilities it keeps."""
    libc = ctypes.CDLL(None, use_errno=True)
    caps: list[int] | None = security.get("capabilities")
    if caps is not None:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        for number in range(last + 1):
            if number not in caps:
                _check(libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0), "drop capability")
    uid = security.get("uid")
    if uid is not None:
        os.setgroups(list(security.get("groups") or []))
        os.setgid(int(security.get("gid") or 0))
        if caps:
            _check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keep capabilities")
        os.setuid(int(uid))
    if caps is not None:
        masks = [0, 0]
        for number in caps:
            masks[number // 32] |= 1 << (number % 32)
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)(*(_CapData(m, m, m) for m in masks))
        _check(libc.capset(ctypes.byref(header), data), "set capabilities")
        for number in caps:
            _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number, 0, 0),
                   "raise ambient capability")
    if security.get("no_new_privs"):
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")


def _needed_paths(argv0: str) -> list[Path]:
    paths = [Path(os.path.realpath(sys.executable)), Path(os.path.realpath(sys.base_prefix))]
    # an editable install's sources may sit in a private checkout (e.g. `mktemp -d`, 0700)
    for name in ("tp_protocol", "tp_cluster", "tp_sandbox"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            paths.append(Path(os.path.realpath(spec.origin)).parent)
    if os.path.isabs(argv0):
        paths.append(Path(os.path.realpath(argv0)))
    return paths


def expose_interpreter(argv0: str) -> None:
    """Make the interpreter's directories traversable for any uid (see the docstring)."""
    for _ in range(8):  # each pass uncovers one level; nesting is shallow
        blocked: dict[Path, set[str]] = {}
        for path in _needed_paths(argv0):
            for parent in [*reversed(path.parents)][1:]:  # "/" itself is never covered
                if not os.stat(parent).st_mode & 0o001:
                    child = path.relative_to(parent).parts[0]
                    blocked.setdefault(parent, set()).add(child)
                    break
        if not blocked:
            return
        for parent, children in blocked.items():
            fds = {c: os.open(parent / c, os.O_PATH) for c in children}
            try:
                netns.mount("tmpfs", str(parent), "tmpfs", 0, "mode=0711")
                for child, fd in fds.items():
                    target = parent / child
                    if os.path.isdir(f"/proc/self/fd/{fd}"):
                        target.mkdir()
                    else:
                        target.touch()
                    netns.mount(f"/proc/self/fd/{fd}", str(target), None,
                                netns.MS_BIND | netns.MS_REC)
            finally:
                for fd in fds.values():
                    os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tp_sandbox.node.enter SPEC.json", file=sys.stderr)
        return EXIT_SETUP
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    if "ready_fd" in spec:
        os.set_inheritable(spec["ready_fd"], False)  # closes at exec: tells the kubelet
    try:
        prepare(spec)
        os.chdir(spec.get("workdir") or "/")
        security = spec.get("security") or {}
        if security.get("uid"):
            expose_interpreter(spec["argv"][0])
        if security.get("read_only_root"):
            netns.mount("none", "/", None, netns.MS_BIND | netns.MS_REMOUNT | netns.MS_RDONLY)
        apply_security(security)
    except OSError as exc:
        print(f"tp-sandbox: container setup failed: {exc}", file=sys.stderr)
        return EXIT_SETUP
    args = spec["argv"]
    try:
        os.execvpe(args[0], args, spec["env"])
    except OSError as exc:
        print(f"tp-sandbox: cannot run {args[0]!r}: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return 0  # not reached: exec replaced us


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
