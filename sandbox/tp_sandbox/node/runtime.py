"""Containers as processes: start through the launcher, pump logs, signal, wait.

A container instance is one child process (the launcher `exec`s the command), leader
of its own process group, so SIGTERM/SIGKILL reach everything it started.

`MountPoints` creates mount targets that do not exist on the host (a bind mount needs
one) and removes them when the last pod using them is gone; it is shared by all pods
because two pods may mount at the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tp_protocol.settings import get_settings

from .logs import LogWriter, log_paths, rotate
from .podconfig import Mount

log = logging.getLogger(__name__)


class MountPoints:
    """Reference-counted mount targets the node had to create on the host."""

    def __init__(self) -> None:
        self._users: dict[str, set[str]] = {}

    def adopt(self, uid: str, paths: list[str]) -> None:
        for p in paths:
            self._users.setdefault(p, set()).add(uid)

    def acquire(self, uid: str, mount: Mount) -> list[str]:
        """Make `mount.target` exist; returns the paths created (or shared) for `uid`."""
        held: list[str] = []
        # Resolved, because /proc/*/mountinfo names targets that way (/var/run -> /run);
        # an unresolved path would never look mounted and another pod's rmdir would
        # detach this pod's mount.
        target = Path(os.path.realpath(mount.target))
        missing: list[Path] = []
        p = target
        while not p.exists() and not p.is_symlink():
            missing.append(p)
            p = p.parent
        for path in reversed(missing):
            if path == target and mount.is_file:
                path.touch()
            else:
                path.mkdir()
            self._users[str(path)] = set()
        # Paths created earlier for other pods are shared, so they stay while we use them.
        p = target
        while str(p) != "/":
            if str(p) in self._users:
                self._users[str(p)].add(uid)
                held.append(str(p))
            p = p.parent
        return held

    def release(self, uid: str) -> None:
        """Drop `uid`'s references; remove paths nobody uses (deepest first, only if empty)."""
        for path in sorted(self._users, key=len, reverse=True):
            users = self._users[path]
            users.discard(uid)
            if users:
                continue
            del self._users[path]
            if mounted_elsewhere(path):
                continue  # another node process's pod mounts here (rmdir would unmount it)
            with contextlib.suppress(OSError):
                p = Path(path)
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                elif p.is_file() and p.stat().st_size == 0:
                    p.unlink()


def mounted_elsewhere(path: str) -> bool:
    """True when some mount namespace on the machine has a mount at or under `path`.

    Several sandbox instances (node processes) share the host's directories; removing
    a directory that is a mount point in another namespace would detach that mount.
    """
    seen: set[int] = set()
    path = os.path.realpath(path)
    prefix = path.rstrip("/") + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ino = (entry / "ns" / "mnt").stat().st_ino
            if ino in seen:
                continue
            seen.add(ino)
            mountinfo = (entry / "mountinfo").read_text()
        except OSError:
            continue
        for line in mountinfo.splitlines():
            target = line.split(" ", 5)[4]
            if target == path or target.startswith(prefix):
                return True
    return False


def new_container_id() -> str:
    return secrets.token_hex(16)


def exit_reason(code: int) -> str:
    return "Completed" if code == 0 else "Error"


class ContainerProcess:
    """One running instance of a container."""

    def __init__(self, proc: asyncio.subprocess.Process, container_id: str,
                 writer: LogWriter) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.container_id = container_id
        self.started_at = time.time()
        self.finished_at = 0.0
        self.exit_code: int | None = None
        self._writer = writer
        self._pumps = [
            asyncio.create_task(self._pump("stdout"), name=f"log-stdout-{container_id[:8]}"),
            asyncio.create_task(self._pump("stderr"), name=f"log-stderr-{container_id[:8]}"),
        ]

    async def _pump(self, stream: str) -> None:
        reader = self.proc.stdout if stream == "stdout" else self.proc.stderr
        assert reader is not None
        chunk = get_settings().node.stream_chunk
        try:
            while data := await reader.read(chunk):
                self._writer.write(stream, data)
        except Exception:
            log.exception("log pump %s of container %s failed", stream, self.container_id)

    async def wait(self) -> int:
        """Wait for exit and the last log bytes; returns the Kubernetes-style exit code."""
        rc = await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self._writer.close()
        if self.exit_code is None:
            self.exit_code = 128 - rc if rc < 0 else rc  # killed by signal N -> 128+N
            self.finished_at = time.time()
        return self.exit_code

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float) -> int:
        """SIGTERM the process group, SIGKILL after `grace` seconds; returns the exit code."""
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
            except TimeoutError:
                self.signal(signal.SIGKILL)
        code = await self.wait()
        # The leader is gone; children that ignored SIGTERM must not outlive the pod.
        self.signal(signal.SIGKILL)
        return code


async def start_container(pod_dir: Path, name: str, argv: list[str], *, env: dict[str, str],
                          mounts: list[Mount], netns_path: str, hostname: str,
                          workdir: str | None, security: dict[str, Any] | None = None
                          ) -> ContainerProcess:
    """Start one instance of container `name` inside the pod; its log starts afresh.

    `security` is `tp_sandbox.node.security.ProcessSecurity.spec()` (None: as root)."""
    container_id = new_container_id()
    spec: dict[str, Any] = {"netns": netns_path, "hostname": hostname, "workdir": workdir or "/",
            "argv": argv, "env": env, "security": security or {},
            "mounts": [{"source": m.source, "target": m.target, "readonly": m.readonly}
                       for m in mounts]}
    # The launcher holds `ready_w` open (close-on-exec) until it execs the command, so EOF
    # on `ready_r` means its namespaces and mounts are in place: only then may exec and
    # probes join its namespaces (earlier they would join the host's).
    ready_r, ready_w = os.pipe()
    spec["ready_fd"] = ready_w
    spec_path = pod_dir / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    spec_path.chmod(0o600)
    rotate(pod_dir, name)
    writer = LogWriter(log_paths(pod_dir, name)[0], get_settings().node.log_max_bytes)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tp_sandbox.node.enter", str(spec_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, close_fds=True,
            pass_fds=(ready_w,),
        )
    finally:
        os.close(ready_w)
    try:
        await asyncio.wait_for(asyncio.to_thread(os.read, ready_r, 1),
                               get_settings().node.api_timeout)
    except TimeoutError:
        log.warning("container %s: launcher did not finish setup in time", name)
    finally:
        os.close(ready_r)
    return ContainerProcess(proc, container_id, writer)


def exec_argv(pid: int, command: list[str]) -> list[str]:
    """argv running `command` in a container's network, mount and UTS namespaces."""
    return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-w", "--", *command]
