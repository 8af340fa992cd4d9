"""Where the root daemon keeps its socket, pid file and state (one per network namespace).

`$TP_ROOT_HOME` wins; otherwise ``/run/tp-jupyter/netns-<inode>`` (kept per network
namespace because the sandbox runs its laptops on one filesystem). Light on purpose:
the front imports it to explain proxy mode.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_GROUP = "tp-jupyter"
SYSTEMD_UNIT = Path("/etc/systemd/system/tp-jupyter-root.service")
LOG_DIR = Path("/var/log/tp-jupyter")


def netns_id() -> str:
    """Identity of this process's network namespace (`net:[4026531840]` -> the number)."""
    try:
        link = os.readlink("/proc/self/ns/net")
    except OSError:
        return "default"
    return link.partition("[")[2].rstrip("]") or "default"


def home() -> Path:
    explicit = os.environ.get("TP_ROOT_HOME")
    return Path(explicit) if explicit else Path("/run/tp-jupyter") / f"netns-{netns_id()}"


def socket_path() -> Path:
    return home() / "root.sock"


def pid_path() -> Path:
    """The supervisor's pid (background-service mode)."""
    return home() / "supervisor.pid"


def state_path() -> Path:
    """JSON: how the service was installed (kind, group, whether install made the group)."""
    return home() / "service.json"


def log_path() -> Path:
    return LOG_DIR / f"root-netns-{netns_id()}.log"
