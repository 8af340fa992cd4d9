"""The agent's session with the traffic-manager.

`Link.run` loops: connect, ArriveAsAgent, then three named tasks until one fails --
Remain (every third of the session TTL), WatchInterceptsForAgent (reviews new
intercepts and swaps the `Registry`), ReportTraffic (drains the bounded row queue).
When the session breaks, the registry is emptied (traffic returns to the app) and
the link arrives again with capped exponential back-off. Listeners keep serving the
app the whole time: the manager is never on the path of unintercepted traffic.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from typing import Any

import grpc
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb
from tp_protocol import manager_pb2_grpc as pb_grpc
from tp_protocol.aio import spawn, wait_at_most
from tp_protocol.auth import with_credentials
from tp_protocol.relay import take_rows
from tp_protocol.settings import InterceptSettings

from tp_cluster.agent import AgentError
from tp_cluster.agent.config import AgentConfig
from tp_cluster.agent.intercepts import Intercept, Registry
from tp_cluster.agent.mirror import Mirrors
from tp_cluster.agent.volumes import SftpServer, VolumeServer
from tp_cluster.errors import ClusterError

log = logging.getLogger(__name__)
S = pb.InterceptState


class SessionLost(ClusterError):
    """The manager ended a stream of this session; arrive again."""


class Link:
    def __init__(self, config: AgentConfig, registry: Registry,
                 settings: InterceptSettings, volumes: VolumeServer | None = None,
                 sftp: SftpServer | None = None) -> None:
        self.config = config
        self.volumes = volumes
        self.sftp = sftp
        self.registry = registry
        self.settings = settings
        self.stub: Any = None
        self.session: Any = None  # pb.SessionInfo while arrived
        self.arrived = asyncio.Event()
        self.traffic: collections.deque[Any] = collections.deque(
            maxlen=settings.agent_traffic_queue)
        self.traffic_dropped = 0
        self._traffic_ready = asyncio.Event()
        self._channel: Any = None
        self._reviewed: set[str] = set()
        self._refused: set[str] = set()
        self._stopping = False
        self.mirrors: Mirrors | None = None
        """The agent's mirrors: their counters ride on the traffic stream."""
        self.link_port = 0
        """Where the agent serves daemons' direct links (link_server), told at arrival."""

    # --- called by connections ----------------------------------------------------------

    def report(self, record: Any) -> None:
        """Queue a traffic row; when full the oldest goes (traffic never waits for this)."""
        if len(self.traffic) == self.traffic.maxlen:
            self.traffic_dropped += 1
        self.traffic.append(record)
        self._traffic_ready.set()

    # --- session loop -------------------------------------------------------------------

    async def run(self) -> None:
        backoff = self.settings.agent_reconnect_backoff_initial
        while True:
            arrived = False
            try:
                self._channel = grpc.aio.insecure_channel(self.config.manager_address)
                self.stub = with_credentials(pb_grpc.ManagerStub(self._channel), self._token)
                self.session = await self.stub.ArriveAsAgent(
                    self._agent_info(), timeout=self.settings.agent_rpc_timeout)
                arrived = True
                backoff = self.settings.agent_reconnect_backoff_initial
                log.info("arrived at %s as %s", self.config.manager_address,
                         self.session.session_id)
                self.arrived.set()
                await self._serve_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if arrived else logging.INFO
                log.log(level, "manager session %s: %s; arriving again",
                        "lost" if arrived else "not established", _brief(exc))
            finally:
                if self._stopping:
                    await self._depart()
                self.arrived.clear()
                self.registry.replace([])  # nobody to route to: everything goes to the app
                self._reviewed.clear()
                self._refused.clear()
                channel, self._channel = self._channel, None
                if channel is not None:
                    await channel.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.agent_reconnect_backoff_max)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the `run` task; a live session departs on the way out."""
        self._stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _depart(self) -> None:
        if self.arrived.is_set() and self.stub is not None:
            with contextlib.suppress(Exception):
                await self.stub.Depart(self.session, timeout=self.settings.agent_depart_timeout)

    def _token(self) -> str:
        """The pod's service-account token, fresh from the file (the kubelet rotates it);
        "" when absent (the manager then answers UNAUTHENTICATED, which the log shows)."""
        try:
            with open(self.config.token_file, encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return ""

    def _agent_info(self) -> Any:
        c = self.config
        return pb.AgentInfo(
            name=c.name, namespace=c.namespace, kind=c.kind, pod_name=c.pod_name,
            pod_ip=c.pod_ip, version=VERSION, link_port=self.link_port,
            ports=[pb.AgentPort(name=p.name, port=p.port, app_port=p.app_port, protocol="TCP")
                   for p in c.ports])

    async def _serve_session(self) -> None:
        tasks = [spawn(self._remain(), "agent-remain", log),
                 spawn(self._watch(), "agent-watch-intercepts", log),
                 spawn(self._report_traffic(), "agent-report-traffic", log)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise SessionLost(f"{next(iter(done)).get_name()} ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _remain(self) -> None:
        interval = max(self.session.ttl_seconds / 3.0, 0.05)
        while True:
            await asyncio.sleep(interval)
            await self.stub.Remain(pb.RemainRequest(session=self.session),
                                   timeout=self.settings.agent_rpc_timeout)

    async def _watch(self) -> None:
        async for snapshot in self.stub.WatchInterceptsForAgent(self.session):
            await self._apply(snapshot)

    async def _review(self, info: Any, state: Any, message: str = "") -> None:
        c = self.config
        request = pb.ReviewInterceptRequest(
            session=self.session, intercept_id=info.id, state=state, message=message,
            pod_ip=c.pod_ip)
        if state == S.INTERCEPT_STATE_ACTIVE:
            request.environment.update(c.app_env)
            request.mounts.extend(pb.Mount(name=m.name, mount_path=m.mount_path,
                                           read_only=m.read_only) for m in c.mounts)
            if self.volumes is not None and self.volumes.port:
                request.volumes_port = self.volumes.port
                request.volumes_token = self.volumes.token
            if self.sftp is not None and self.sftp.port:
                request.sftp_port = self.sftp.port
        await self.stub.ReviewIntercept(request, timeout=self.settings.agent_rpc_timeout)

    async def _apply(self, snapshot: Any) -> None:
        active: list[Intercept] = []
        seen: set[str] = set()
        for info in snapshot.intercepts:
            seen.add(info.id)
            if info.state in (S.INTERCEPT_STATE_REMOVED, S.INTERCEPT_STATE_CONFLICT):
                continue
            if info.id in self._refused:
                continue
            try:
                port = self.config.port_for(info.spec.service_port)
                intercept = Intercept.from_info(info, port.port)
            except (AgentError, re.error) as exc:
                log.warning("intercept %s refused: %s", info.id, exc)
                self._refused.add(info.id)
                await self._review(info, S.INTERCEPT_STATE_AGENT_ERROR, f"traffic-agent: {exc}")
                continue
            if info.id not in self._reviewed:
                await self._review(info, S.INTERCEPT_STATE_ACTIVE)
                self._reviewed.add(info.id)
                log.info("intercept %s active on port %d (%s)", info.id, port.port,
                         "global" if intercept.is_global else "personal")
            active.append(intercept)
        for gone in sorted(self._reviewed - seen):
            log.info("intercept %s ended", gone)
        self._reviewed &= seen
        self._refused &= seen
        self.registry.replace(active)

    async def _report_traffic(self) -> None:
        call = self.stub.ReportTraffic()
        counted = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                mirrors = self.mirrors
                if mirrors is not None and mirrors.changed:
                    # counters at most every mirror_counters_interval, the last ones too
                    due = counted + self.settings.mirror_counters_interval - loop.time()
                    if due <= 0:
                        counted = loop.time()
                        await call.write(pb.TrafficReport(
                            session=self.session, mirror_counters=mirrors.counters()))
                        continue
                    await wait_at_most(self._traffic_ready.wait(), due)
                else:
                    await self._traffic_ready.wait()
                self._traffic_ready.clear()
                # a gRPC write per request costs the serving loop more than the request
                await asyncio.sleep(self.settings.agent_traffic_batch_delay)
                while self.traffic:  # what queued up meanwhile goes as one message
                    rows = take_rows(self.traffic, self.settings.traffic_batch_bytes)
                    await call.write(pb.TrafficReport(session=self.session, records=rows))
                if self.traffic_dropped:
                    log.warning("%d traffic rows dropped: the manager is slower than the "
                                "traffic", self.traffic_dropped)
                    self.traffic_dropped = 0
        finally:
            call.cancel()


def _brief(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
