"""The intercepted container's volumes on the workstation: the mount point, and a copy
read from the traffic-agent through the manager (see "Volumes" in manager.proto).

The daemon dials the agent pod's `volumes_port` through a manager Tunnel (the agent
serves, the daemon never execs into pods), sends the intercept's `volumes_token` and
unpacks the tar.gz it gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import InterceptSettings

from tp_daemon import leftovers
from tp_daemon.errors import InterceptFailed, InterceptUsage
from tp_daemon.intercepts.base import Owner


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
    if not path:
        return
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
