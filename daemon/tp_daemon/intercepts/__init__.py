"""Intercepts from the workstation, split by concern:

    base        the owner it asks (the Session), the book of this daemon's intercepts,
                the shared spec check, manager statuses as daemon errors
    listing     `tp list`: the manager's ListWorkloads (its WorkloadState enum)
    lifecycle   intercept (with undo), leave, uninstall, env; readiness is the manager's
                disposition (ACTIVE), never the daemon's look at Pods or Endpoints
    volumes     the mount point and the copy read from the agent through a Tunnel
    dials       ReceiveDials: intercepted connections to the local target
    traffic     WatchTraffic history and followers; Replay (tp_protocol.replay)
    hold        held requests (`--hold`): wait for a decision, forward/respond/drop

`Intercepts` puts them together for one connection. Three named background tasks
(tp-receive-dials, tp-watch-intercepts, tp-watch-traffic) run while connected; each
reopens its stream with the current channel and session whenever it ends (reconnects,
re-arrivals, grpc.aio's CancelledError for a closed channel), logs why, asks the owner to
check the channel, and is ended only by `stop()`. After a re-arrival (new session: the
manager restarted or expired the old one) `restore` re-creates every intercept from its
spec. Errors are `tp_daemon.errors`
(InterceptUsage, InterceptNotFound, InterceptConflict, InterceptTimeout,
InterceptFailed), one line each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn, wait_at_most
from tp_protocol.settings import InterceptSettings

from tp_daemon.errors import DaemonError
from tp_daemon.intercepts.agentlink import AgentLinks
from tp_daemon.intercepts.base import Book, Owner, Progress, check_spec
from tp_daemon.intercepts.dials import Dials
from tp_daemon.intercepts.hold import Holds
from tp_daemon.intercepts.lifecycle import Lifecycle
from tp_daemon.intercepts.listing import list_workloads
from tp_daemon.intercepts.traffic import Traffic

__all__ = ["Intercepts", "Owner", "Progress", "check_spec"]

log = logging.getLogger(__name__)


class Intercepts:
    """The daemon's intercept side for one connection (see the module docstring)."""

    def __init__(self, owner: Owner, settings: InterceptSettings,
                 progress: Progress) -> None:
        self.owner = owner
        self.settings = settings
        self.book = Book()
        self.lifecycle = Lifecycle(owner, settings, self.book, progress)
        self.dials = Dials(owner, settings)
        self.traffic = Traffic(owner, settings, self.book)
        self.holds = Holds(owner, settings, self.book)
        self.dials.holds = self.holds
        self.traffic.mark = self.holds.mark
        self.links = AgentLinks(settings, self.dials.relay, self.book)
        self._tasks: list[asyncio.Task[None]] = []
        self._reopen: dict[str, asyncio.Event] = {}

    @property
    def mine(self) -> dict[str, mpb.InterceptInfo]:
        return self.book.mine

    @property
    def history(self) -> list[mpb.TrafficRecord]:
        return list(self.traffic.history)

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        for name, loop in (("tp-receive-dials", self.dials.receive),
                           ("tp-watch-intercepts", self._watch_intercepts),
                           ("tp-watch-traffic", self.traffic.receive)):
            self._tasks.append(spawn(self._forever(name, loop), name, log))

    async def stop(self) -> None:
        """Stop the streams, then in-flight dials, then remove the mount points we made."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.links.stop()
        await self.dials.stop()
        for name in list(self.book.local):
            self.lifecycle.forget(name)
        self.book.mine.clear()

    async def _forever(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run one stream loop again whenever it ends; log why. Only `stop()` ends it."""
        task = asyncio.current_task()
        while True:
            try:
                await body()
                log.info("%s: the manager ended the stream; reopening", name)
            except asyncio.CancelledError:
                if task is not None and task.cancelling():
                    raise  # stop(): our own cancellation
                # grpc.aio cancels the calls of a channel that is closed (a reconnect
                # closes the old one): the stream ended, this loop did not
                log.info("%s: its channel was closed; reopening", name)
            except (grpc.aio.AioRpcError, DaemonError) as e:
                log.info("%s ended: %s; reopening", name, e)
                self.owner.channel_trouble()
            except Exception:
                log.exception("%s failed; reopening", name)
            # after the retry delay, or at once when the channel or session was renewed
            wake = self._reopen.setdefault(name, asyncio.Event())
            await wait_at_most(wake.wait(), self.settings.daemon_stream_retry)
            wake.clear()

    def reopen_streams(self) -> None:
        """The channel or session is new: streams waiting to reopen do so now."""
        for wake in self._reopen.values():
            wake.set()

    async def _watch_intercepts(self) -> None:
        stub, session = self.owner.manager()
        call = stub.WatchIntercepts(session)
        try:
            async for snapshot in call:
                if self.owner.manager()[1].session_id != session.session_id:
                    # a re-arrival replaced this session: its snapshots are stale now
                    # (the loop reopens the watch on the new one)
                    return
                # expired with the session, or removed by an uninstall: drop local state
                for gone in self.book.update(snapshot):
                    self.lifecycle.forget(gone)
                self.links.sync()
        finally:
            call.cancel()

    # --- the daemon API ---------------------------------------------------------------

    async def list_workloads(self, request: dpb.ListRequest) -> dpb.WorkloadList:
        return await list_workloads(self.owner, request, self.owner.settings.rpc_timeout)

    async def intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        if request.hold:   # checked before anything changes in the cluster
            timeout = self.holds.timeout_of(request.hold_timeout)
            await self.holds.check_target(request.spec.target_host, request.spec.target_port)
        result = await self.lifecycle.intercept(request)
        if request.hold:
            self.holds.enable(result.intercept.spec.name, timeout)
        else:   # a replaced intercept holds only when asked again
            self.holds.forget(result.intercept.spec.name)
        return result

    async def leave(self, name: str) -> str:
        self.holds.forget(name)
        return await self.lifecycle.leave(name)

    def begin_restore(self) -> None:
        """A new session is about to be used: keep every intercept until `restore`."""
        if self.book.local:
            self.book.restoring = True

    async def restore(self) -> tuple[list[str], list[str]]:
        """Re-create this daemon's intercepts in the new session (restored, failed)."""
        return await self.lifecycle.restore()

    async def uninstall(self, request: dpb.UninstallRequest) -> dpb.UninstallResult:
        return await self.lifecycle.uninstall(request)

    def env(self, name: str) -> dpb.EnvInfo:
        return self.lifecycle.env(name)

    def intercepts(self) -> list[mpb.InterceptInfo]:
        return self.links.annotate(self.lifecycle.intercepts())

    def watch_traffic(self, request: dpb.WatchTrafficRequest
                      ) -> AsyncIterator[mpb.TrafficRecord]:
        return self.traffic.watch(request)

    async def replay(self, request: dpb.ReplayRequest) -> dpb.ReplayResult:
        return await self.traffic.replay(request)

    async def set_hold(self, request: dpb.HoldRequest) -> dpb.HoldResult:
        return await self.holds.set(request)

    def list_held(self, request: dpb.ListHeldRequest) -> dpb.HeldList:
        return self.holds.listing(request)

    async def decide_held(self, request: dpb.HeldDecision) -> dpb.HeldOutcome:
        return await self.holds.decide(request)
