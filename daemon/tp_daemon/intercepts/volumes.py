"""The intercepted container's volumes on the workstation: a live sshfs mount of the
traffic-agent's SFTP server, or (without sshfs/FUSE, or an agent without SFTP) a copy
read from the agent through the manager (see "Volumes" in manager.proto).

The daemon dials the agent pod's `volumes_port` through a manager Tunnel (the agent
serves, the daemon never execs into pods), sends the intercept's `volumes_token` and
unpacks the tar.gz it gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn
from tp_protocol.pumps import splice
from tp_protocol.settings import InterceptSettings

from tp_daemon import leftovers, paths
from tp_daemon.errors import DaemonError, InterceptFailed, InterceptUsage
from tp_daemon.intercepts.base import Owner

log = logging.getLogger(__name__)


def mount_point(wanted: str) -> tuple[str, bool]:
    """(the folder to copy the volumes into, whether this daemon made it)."""
    if not wanted:
        made = tempfile.mkdtemp(prefix="telfs-")
        leftovers.record("dirs", made)  # removed by `tp quit` should this daemon die
        return made, True
    path = Path(wanted).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InterceptUsage(f"--mount {wanted}: not an empty folder; give an empty or "
                             "new folder, true (a temp folder) or false")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InterceptUsage(f"--mount {wanted}: cannot create it ({e.strerror}); give "
                             "another folder") from e
    return str(path), created


async def _read_all(owner: Owner, info: mpb.InterceptInfo, limit: int) -> bytes:
    stream = await owner.dial(info.pod_ip, info.volumes_port)
    data = bytearray()
    try:
        await stream.send(info.volumes_token.encode() + b"\n")
        while chunk := await stream.recv():
            data += chunk
            if len(data) > limit:
                raise InterceptFailed(f"the volumes of {info.spec.workload} exceed "
                                      f"{limit} bytes (intercept.daemon_mount_limit); "
                                      "intercept with --mount false to skip them")
    finally:
        await stream.close()
    return bytes(data)


async def fetch(owner: Owner, info: mpb.InterceptInfo, mount_point: str,
                settings: InterceptSettings) -> None:
    """Copy the agent's view of the app's volumes into `mount_point`."""
    if not info.mounts:
        return
    workload = info.spec.workload
    if not info.volumes_port or not info.pod_ip:
        raise InterceptFailed(f"the traffic-agent of {workload} serves no volumes (an older "
                              "agent?); uninstall it and intercept again, or use --mount false")
    try:
        async with asyncio.timeout(settings.daemon_mount_timeout):
            data = await _read_all(owner, info, settings.daemon_mount_limit)
        if not data:
            raise InterceptFailed(f"the traffic-agent of {workload} refused to send its "
                                  "volumes; intercept again")
        await asyncio.to_thread(_extract, data, mount_point)
    except (OSError, TimeoutError) as e:
        raise InterceptFailed(f"copying the volumes of {workload} failed: "
                              f"{e or type(e).__name__}; intercept with --mount false to "
                              "skip them") from e
    except tarfile.TarError as e:
        raise InterceptFailed(f"unpacking the volumes of {workload} into {mount_point} "
                              f"failed: {e}; intercept with --mount false to skip them") from e


def _extract(data: bytes, mount_point: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(mount_point, filter="data")


def _rmtree(path: Path) -> None:
    """rmtree that also empties read-only folders of the copy (a non-root daemon cannot
    unlink inside a 0555 folder until it makes the folder writable again)."""
    with contextlib.suppress(OSError):
        for folder, _, _ in os.walk(path):
            os.chmod(folder, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def remove_dir(path: str, own: bool) -> None:
    """Remove a mount point: all of it when we made it, else only what we put there."""
    if not path or os.path.ismount(path):
        return  # never delete through a live mount: those files are the pod's
    target = Path(path)
    if own:
        _rmtree(target)
        leftovers.forget("dirs", path)
        return
    with contextlib.suppress(OSError):
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                _rmtree(child)
            else:
                child.unlink(missing_ok=True)


# --- live mounts (sshfs over the agent's SFTP server) -------------------------------------

STATE_FILE = "mounts.json"
"""In the daemon's home: {mount point: {"pid": sshfs pid, "own": bool}} of live mounts,
so that a daemon killed with -9 leaves nothing mounted once `tp connect`/`tp quit` runs."""


def split_mode(wanted: str) -> tuple[str, str]:
    """`DIR:ro` / `DIR:rw` / `DIR` -> (DIR, "ro" | "rw" | "")."""
    for mode in ("ro", "rw"):
        if wanted.endswith(f":{mode}"):
            return wanted[: -len(mode) - 1], mode
    return wanted, ""


def live_unavailable() -> str:
    """Why sshfs cannot mount here ("" when it can)."""
    if shutil.which("sshfs") is None:
        return "sshfs is not installed (apt-get install sshfs)"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "fusermount is not installed (apt-get install fuse3)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"FUSE is not usable here (/dev/fuse: {e.strerror})"
    return ""


def check_writable(info: mpb.InterceptInfo, mode: str) -> None:
    """`:rw` asks for write access to every volume: refuse when one is read-only."""
    if mode != "rw":
        return
    read_only = [m.mount_path for m in info.mounts if m.read_only]
    if read_only:
        raise InterceptUsage(f"--mount ...:rw: {info.spec.workload} mounts {read_only[0]} "
                             "read-only; drop :rw (writable volumes stay writable) or use :ro")


@dataclass
class LiveMount:
    """One sshfs mount and the local listener that carries its SSH connection."""

    path: str
    own: bool
    proc: asyncio.subprocess.Process
    server: asyncio.Server
    conns: set[asyncio.Task[None]] = field(default_factory=set)


def _state_path() -> Path:
    return paths.home() / STATE_FILE


def _load_state() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(state: dict[str, dict[str, Any]]) -> None:
    target = _state_path()
    if not state:
        target.unlink(missing_ok=True)
        return
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, target)


def _fusermount(path: str) -> None:
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([tool, "-u", "-z", path], capture_output=True, timeout=10, check=False)


def _die_with_parent(argv: list[str]) -> list[str]:
    # sshfs exits (and unmounts) when the daemon dies, even by SIGKILL; setpriv sets
    # PR_SET_PDEATHSIG without a preexec_fn (unsafe in a process with gRPC's threads)
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


async def mount(owner: Owner, info: mpb.InterceptInfo, path: str, *, own: bool,
                read_only: bool, settings: InterceptSettings) -> LiveMount:
    """Mount the agent's volumes at `path` with sshfs; its SSH connection is spliced onto
    a manager Tunnel to the agent's SFTP port."""
    workload = info.spec.workload
    conns: set[asyncio.Task[None]] = set()

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await owner.dial(info.pod_ip, info.sftp_port)
        except (OSError, DaemonError) as e:
            log.warning("the SFTP connection to %s failed: %s", workload, e)
            writer.close()
            return
        await splice(reader, writer, stream, f"sftp {workload}")

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = spawn(carry(reader, writer), f"tp-sftp-{workload}", log)
        conns.add(task)
        task.add_done_callback(conns.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    argv = ["sshfs", "tp@127.0.0.1:/", path, "-f", "-p", str(port),
            "-o", "password_stdin", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={max(1, int(settings.daemon_mount_timeout))}",
            "-o", "fsname=tp:" + workload, "-o", "cache=no"]
    if read_only:
        argv += ["-o", "ro"]
    proc = await asyncio.create_subprocess_exec(
        *_die_with_parent(argv), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    live = LiveMount(path, own, proc, server, conns)
    state = _load_state()
    state[path] = {"pid": proc.pid, "own": own}
    _save_state(state)
    assert proc.stdin is not None
    with contextlib.suppress(ConnectionError):  # an sshfs that exited at once: see below
        proc.stdin.write(info.volumes_token.encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.daemon_mount_timeout
    while not await asyncio.to_thread(os.path.ismount, path):
        if proc.returncode is not None or loop.time() > deadline:
            err = b""
            if proc.returncode is not None and proc.stderr is not None:
                err = await proc.stderr.read()
            unmount(live)
            why = err.decode(errors="replace").strip().splitlines()
            raise InterceptFailed(f"sshfs could not mount the volumes of {workload} at {path}"
                                  f" ({why[-1] if why else 'timed out'})")
        await asyncio.sleep(0.05)
    return live


def unmount(live: LiveMount) -> None:
    """Unmount, stop sshfs and the listener, forget the mount (sync: used by `forget`)."""
    _fusermount(live.path)
    if live.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            live.proc.terminate()
    live.server.close()
    for task in list(live.conns):
        task.cancel()
    state = _load_state()
    if state.pop(live.path, None) is not None:
        _save_state(state)


def cleanup_stale() -> list[str]:
    """Unmount what a killed daemon left mounted (from the state file); returns the paths."""
    state = _load_state()
    for path, entry in state.items():
        pid = int(entry.get("pid") or 0)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except OSError:
            cmdline = b""
        if cmdline.startswith(b"sshfs\0") and path.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        _fusermount(path)
        remove_dir(path, bool(entry.get("own")))
    _save_state({})
    return sorted(state)
