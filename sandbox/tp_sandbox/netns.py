"""Entering network namespaces from Python (3.11 has no os.setns).

A socket belongs to the network namespace its creating thread was in, and keeps it
after the thread switches back; so a process in the host namespace can listen or
connect inside a sandbox namespace with `socket_in(netns, ...)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from tp_protocol.settings import get_settings

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace open at `fd`."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None
          ) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(),
                    fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                    data.encode() if data else None),
        f"mount {source} on {target}",
    )


MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with this thread in network namespace `name`, then switch back.

    Only the calling thread moves; a lock keeps two such bodies from interleaving on
    the asyncio thread.
    """
    with _setns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(netns_path(name), os.O_RDONLY)
        try:
            setns(target, CLONE_NEWNET)
            try:
                yield
            finally:
                setns(own, CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(own)


def socket_in(name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM
              ) -> socket.socket:
    """A new socket that lives in network namespace `name`.

    TCP sockets are made with IPPROTO_TCP: asyncio turns TCP_NODELAY on only for sockets
    whose protocol says TCP, and without it small writes wait for delayed ACKs (~40 ms).
    """
    proto = 0
    if type == socket.SOCK_STREAM and family in (socket.AF_INET, socket.AF_INET6):
        proto = socket.IPPROTO_TCP
    with entered(name):
        return socket.socket(family, type, proto)


def run(name: str, argv: Sequence[str], check: bool = True, input: bytes | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a command inside network namespace `name` (like `ip netns exec`).

    `timeout` defaults to the `sandbox.command_timeout` setting."""
    if timeout is None:
        timeout = get_settings().sandbox.command_timeout
    return subprocess.run(["ip", "netns", "exec", name, *argv], check=check,
                          capture_output=True, input=input, timeout=timeout)


def nft(name: str, script: str) -> None:
    """Apply an nftables script atomically inside network namespace `name`."""
    proc = run(name, ["nft", "-f", "-"], check=False, input=script.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"nft in {name} failed: {proc.stderr.decode().strip()}")
