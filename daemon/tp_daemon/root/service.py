"""`tp daemon install|uninstall|status`: the root daemon as a system service.

Where PID 1 is systemd, a unit (`tp-jupyter-root.service`, Restart=on-failure,
ExecStopPost cleans the nft tables). Elsewhere a supervised background service: a
detached supervisor process (pid file) that runs the root daemon, logs to
/var/log/tp-jupyter and restarts it when it dies, cleaning its tables in between so the
workstation's DNS never points at a dead relay.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tp_protocol.settings import get_settings

from tp_daemon.errors import DaemonError
from tp_daemon.root import client, paths


class ServiceError(DaemonError):
    """The service could not be installed, stopped or asked."""

    code = "USAGE"


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ServiceError(f"{what} the root daemon needs root: sudo tp daemon {what}")


def is_systemd() -> bool:
    """systemd is PID 1 (sd_booted's test) and systemctl is there."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def read_state() -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(paths.state_path().read_text(encoding="utf-8"))
        if isinstance(state, dict):
            return state
    return {}


def _supervisor_pid() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(paths.pid_path().read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
        return pid
    return None


def answers() -> dict[str, Any] | None:
    """The root daemon's status reply, or None when its socket does not answer."""
    try:
        reply = client.call({"op": "status"}, get_settings().root_daemon.request_timeout)
    except (OSError, ValueError):
        return None
    return reply if reply.get("ok") else None


def unit_text(group: str) -> str:
    py = sys.executable
    return (f"[Unit]\nDescription=tp-jupyter root daemon (routes and DNS for group {group})\n"
            "After=network.target\n\n[Service]\n"
            f"ExecStart={py} -m tp_daemon.root serve --group {group}\n"
            f"ExecStopPost={py} -m tp_daemon.root cleanup\n"
            "Restart=on-failure\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n")


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ServiceError(f"`{' '.join(argv)}` failed: "
                           f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def _wait_answering(timeout: float) -> bool:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if answers() is not None:
            return True
        time.sleep(0.1)  # polling a socket another process is opening
    return False


def install(group: str = paths.DEFAULT_GROUP) -> str:
    """Install and start the service; a second install says so and changes nothing."""
    _require_root("install")
    state = read_state()
    status = answers()
    if state and status is not None:
        note = "" if state.get("group") == group else (
            f" (it serves group {state.get('group')}; to change it: tp daemon uninstall, "
            f"then tp daemon install --group {group})")
        return (f"the root daemon is already installed ({state.get('kind')}) and running "
                f"on {paths.socket_path()} for group {status.get('group')}; nothing to "
                f"do{note}")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise ServiceError("/dev/net/tun is missing; load the tun module (modprobe tun) "
                           "and install again")
    if shutil.which("nft") is None:
        raise ServiceError("the nft command is missing; apt-get install nftables, then "
                           "install again")
    created = False
    try:
        grp.getgrnam(group)
    except KeyError:
        _run(["groupadd", "--system", group])
        created = True
    kind = "systemd" if is_systemd() else "supervised"
    paths.home().mkdir(parents=True, exist_ok=True, mode=0o755)
    paths.state_path().write_text(json.dumps(
        {"kind": kind, "group": group, "created_group": created, "python": sys.executable}),
        encoding="utf-8")
    settings = get_settings().root_daemon
    try:
        if kind == "systemd":
            paths.SYSTEMD_UNIT.write_text(unit_text(group), encoding="utf-8")
            _run(["systemctl", "daemon-reload"])
            _run(["systemctl", "enable", "--now", paths.SYSTEMD_UNIT.name])
        else:
            paths.LOG_DIR.mkdir(parents=True, exist_ok=True)
            subprocess.Popen(
                [sys.executable, "-m", "tp_daemon.root", "supervise", "--group", group],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        if not _wait_answering(settings.start_timeout):
            raise ServiceError(f"the root daemon did not answer within "
                               f"{settings.start_timeout:.0f}s; see {paths.log_path()}")
    except BaseException:
        _stop(read_state())
        _forget(created, group)
        raise
    return (f"installed the root daemon ({kind}) on {paths.socket_path()}: members of group "
            f"{group} (sudo usermod -aG {group} USER) get full routing and DNS from "
            "`tp connect`")


def _stop(state: dict[str, Any]) -> None:
    """Stop whatever runs (unit or supervisor) and remove the tables it may have left."""
    if state.get("kind") == "systemd":
        with contextlib.suppress(ServiceError):
            _run(["systemctl", "disable", "--now", paths.SYSTEMD_UNIT.name])
        with contextlib.suppress(FileNotFoundError):
            paths.SYSTEMD_UNIT.unlink()
        with contextlib.suppress(ServiceError):
            _run(["systemctl", "daemon-reload"])
    pid = _supervisor_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        give_up = time.monotonic() + get_settings().root_daemon.stop_timeout
        while time.monotonic() < give_up and _alive(pid):
            time.sleep(0.05)  # waiting for another process to exit
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie child of ours counts as gone
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _forget(created_group: bool, group: str) -> None:
    shutil.rmtree(paths.home(), ignore_errors=True)
    if not os.environ.get("TP_ROOT_HOME"):
        with contextlib.suppress(OSError):  # /run/tp-jupyter too, when no other netns uses it
            paths.home().parent.rmdir()
    if created_group:
        with contextlib.suppress(ServiceError):
            _run(["groupdel", group])


def cleanup() -> list[str]:
    """Remove every nft table of the root daemon (the TUN link dies with its process)."""
    prefix = get_settings().root_daemon.nft_prefix
    nft = shutil.which("nft")
    if nft is None:
        return []
    out = subprocess.run([nft, "list", "tables", "ip"], capture_output=True, text=True,
                         check=False).stdout
    names = [ln.split()[-1] for ln in out.splitlines()
             if ln.startswith("table") and ln.split()[-1].startswith(prefix)]
    for name in names:
        subprocess.run([nft, "delete", "table", "ip", name], capture_output=True, check=False)
    return names


def uninstall(force: bool = False) -> str:
    """Stop and remove the service; connected users make it refuse unless `force`."""
    _require_root("uninstall")
    state = read_state()
    status = answers()
    if not state and status is None and _supervisor_pid() is None:
        return "the root daemon is not installed here; nothing to do"
    leases = (status or {}).get("leases") or []
    if leases and not force:
        who = ", ".join(f"{lease['user']} ({lease['context']})" for lease in leases)
        raise ServiceError(f"{len(leases)} user(s) are connected through the root daemon: "
                           f"{who}; they run `tp quit` first, or `sudo tp daemon uninstall "
                           "--force` cuts them off")
    _stop(state)
    group = str(state.get("group", ""))
    _forget(bool(state.get("created_group")), group)
    removed = f"; group {group} removed" if state.get("created_group") else ""
    cut = f"; cut off {len(leases)} connected user(s)" if leases else ""
    return f"uninstalled the root daemon{cut}{removed}"


def status() -> dict[str, Any]:
    """For `tp daemon status` (works for members of the group; root sees everything)."""
    state = read_state()
    reply = answers()
    return {"installed": bool(state) or reply is not None, "running": reply is not None,
            "kind": state.get("kind"), "group": (reply or state).get("group"),
            "socket": str(paths.socket_path()), "log_file": str(paths.log_path()),
            "supervisor_pid": _supervisor_pid(), "leases": (reply or {}).get("leases", []),
            "problem": "" if reply is not None else client.unavailable_reason()}
