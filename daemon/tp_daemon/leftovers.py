"""What a daemon changed on the workstation, recorded as it happens so that a daemon
killed with SIGKILL can be cleaned up after: by `tp quit` (also when no daemon runs) and
by the next daemon before it connects.

The record is `state.json` in the daemon's folder (`tp_daemon.paths.home()`):
``{"pid": P, "nft_tables": [...], "links": [...], "dirs": [...]}``. Each entry is added
before the thing is made (so a crash in between leaves an entry for nothing, which
`clean` tolerates) and dropped once it is removed. Stdlib only: the front imports this
module to clean up without starting a daemon.

- nft tables: the DNS redirect (port 53 to the dead daemon's resolver) lives here;
  while it stays, the workstation's own names do not resolve.
- links: the TUN link is non-persistent (the kernel removes it, with its routes, when
  the daemon's file descriptor closes) but is recorded anyway, for a link made by a
  daemon that was stopped (SIGSTOP) rather than killed.
- dirs: temp mount points of intercepts (`telfs-*`) the daemon made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tp_daemon import paths

log = logging.getLogger(__name__)

KINDS = ("nft_tables", "links", "dirs")


def state_path() -> Path:
    return paths.home() / "state.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    # atomic: a kill mid-write never leaves half a record
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def record(kind: str, value: str) -> None:
    """Note `value` (of `kind`, one of KINDS) before making it."""
    path = state_path()
    data = _read(path)
    data["pid"] = os.getpid()
    items = list(data.get(kind) or [])
    if value not in items:
        items.append(value)
        data[kind] = items
        _write(path, data)


def forget(kind: str, value: str) -> None:
    """Drop `value` once it is removed."""
    path = state_path()
    data = _read(path)
    items = [v for v in data.get(kind) or [] if v != value]
    if items != list(data.get(kind) or []):
        data[kind] = items
        _write(path, data)


def pending() -> dict[str, list[str]]:
    """What the record still lists."""
    data = _read(state_path())
    return {kind: list(data.get(kind) or []) for kind in KINDS}


def _run(*argv: str) -> bool:
    tool = shutil.which(argv[0])
    if tool is None:
        return False
    done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, check=False)
    return done.returncode == 0


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tp_daemon" in cmdline


def clean() -> list[str]:
    """Remove what a dead daemon left (its record says what); returns one phrase per
    thing removed. Does nothing while the recorded daemon still runs."""
    path = state_path()
    data = _read(path)
    if not data or _pid_alive(int(data.get("pid") or 0)):
        return []
    removed = []
    for table in data.get("nft_tables") or []:
        if _run("nft", "list", "table", "ip", table) and _run("nft", "delete", "table", "ip",
                                                              table):
            removed.append(f"nft table {table}")
    for link in data.get("links") or []:
        if _run("ip", "link", "show", "dev", link) and _run("ip", "link", "delete", "dev",
                                                            link):
            removed.append(f"link {link}")
    for folder in data.get("dirs") or []:
        if os.path.ismount(folder):
            log.warning("left %s alone: something is still mounted there", folder)
            continue  # never delete through a mount: those files are the pod's
        if Path(folder).is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"folder {folder}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    for what in removed:
        log.warning("removed the %s a daemon that died left behind", what)
    return removed
