"""Container launcher: ``python -m tp_sandbox.node.enter SPEC.json``.

Runs as the container's own process and then `exec`s the container's command, so the
kubelet's child *is* the container (its pid and process group are what gets signalled).
Before the exec it enters the pod's network namespace, makes a private mount (and UTS)
namespace with `/` as a slave (host mounts still propagate in, ours never leak out),
bind-mounts resolv.conf, hosts and the volumes, and sets the hostname.

Doing this in a fresh interpreter instead of a `preexec_fn` keeps fork-unsafe work
(locks, allocation) out of the multi-threaded kubelet.

SPEC: {"netns": path, "hostname": str, "workdir": str, "argv": [...], "env": {...},
       "mounts": [{"source": path, "target": path, "readonly": bool}]}
Exit codes of its own: 127 command not found, 128 setup failed (message on stderr).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

from .. import netns

CLONE_NEWUTS = 0x04000000
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
