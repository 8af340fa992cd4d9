"""What every part of the daemon's intercept side shares: the owner it asks, the book of
this daemon's intercepts, the local spec check and the manager-status translation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from tp_protocol import intercept_spec
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.settings import ConnectSettings

from tp_daemon.errors import (
    ClusterUnreachable,
    DaemonError,
    InterceptConflict,
    InterceptNotFound,
    InterceptTimeout,
    InterceptUsage,
)
from tp_daemon.streams import Stream

Progress = Callable[[str, str, float, bool], None]
"""(operation, message, fraction or -1, done): the daemon's progress sink."""


class Owner(Protocol):
    """What the intercept side needs of the daemon's `Session` (tests give a small one)."""

    settings: ConnectSettings

    def manager(self) -> tuple[mgrpc.ManagerStub, mpb.SessionInfo]: ...

    def namespace(self) -> str: ...

    async def dial(self, ip: str, port: int) -> Stream: ...

    def channel_trouble(self) -> None:
        """A stream to the manager broke: check the channel now, not at the next Remain."""


@dataclass
class Local:
    """What the daemon keeps about one of its intercepts beyond the manager's info."""

    mount_point: str
    own_mount: bool        # a temp dir this daemon made: removed on leave
    container_port: int
    spec: mpb.InterceptSpec = field(default_factory=mpb.InterceptSpec)
    """What was asked (defaults filled in): re-created from it after a manager restart."""
    live: Any = None       # volumes.LiveMount while the volumes are mounted with sshfs


@dataclass
class Book:
    """This daemon's intercepts: the manager's latest snapshot plus local state."""

    mine: dict[str, mpb.InterceptInfo] = field(default_factory=dict)  # name -> info
    local: dict[str, Local] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    op_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restoring: bool = False
    """Set from a re-arrival until its intercepts are re-created: a new manager's
    (empty) snapshot must not make the daemon forget them."""

    def update(self, snapshot: mpb.InterceptSnapshot) -> list[str]:
        """Take a WatchIntercepts snapshot; returns the names that went away."""
        self.mine = {ic.spec.name: ic for ic in snapshot.intercepts}
        busy = self.op_lock.locked() or self.restoring
        gone = [] if busy else sorted(set(self.local) - set(self.mine))
        event, self.changed = self.changed, asyncio.Event()
        event.set()
        return gone


def rpc_error(e: grpc.aio.AioRpcError, what: str) -> DaemonError:
    """A manager's gRPC status as the daemon error the front shows (its text kept)."""
    code, text = e.code(), (e.details() or "").strip()
    if code == grpc.StatusCode.NOT_FOUND:
        return InterceptNotFound(text)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InterceptUsage(text)
    if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
        return InterceptConflict(text)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return InterceptTimeout(f"{what} timed out ({text}); try again or raise "
                                "intercept.activate_timeout")
    return ClusterUnreachable(f"{what} failed: {code.name}: {text}; check `tp status`")


def check_spec(spec: mpb.InterceptSpec) -> None:
    """The shared spec check, so bad input fails before anything changes in the cluster."""
    try:
        intercept_spec.validate(spec)
    except intercept_spec.InvalidInterceptSpec as e:
        raise InterceptUsage(str(e)) from e
