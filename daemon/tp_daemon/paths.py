"""Where the daemon keeps its socket and log: one daemon per user and network namespace.

`$TP_HOME` wins; otherwise ``~/.cache/tp-jupyter/<netns>`` where <netns> is the inode of
this process's network namespace, because the sandbox runs all laptops on one
filesystem and two laptops' daemons must never share a socket.
"""

from __future__ import annotations

import os
from pathlib import Path


def netns_id() -> str:
    """Identity of the current network namespace (`net:[4026531840]` -> `4026531840`)."""
    try:
        link = os.readlink("/proc/self/ns/net")
    except OSError:
        return "default"
    return link.partition("[")[2].rstrip("]") or "default"


def home() -> Path:
    """The daemon's folder for this user and network namespace (created on demand)."""
    explicit = os.environ.get("TP_HOME")
    if explicit:
        base = Path(explicit)
    else:
        base = Path.home() / ".cache" / "tp-jupyter" / f"netns-{netns_id()}"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def bytecode_cache() -> Path:
    """Compiled modules of the daemon and the CLI (`tp_protocol.bytecode`): one folder per
    user, shared by every network namespace (nothing in it depends on the namespace)."""
    return Path.home() / ".cache" / "tp-jupyter" / "pycache"


def socket_path() -> Path:
    """The daemon API's Unix socket (kept short: sun_path has 108 bytes)."""
    return home() / "daemon.sock"


def log_path() -> Path:
    return home() / "daemon.log"


def pid_path() -> Path:
    return home() / "daemon.pid"
