"""Traffic on the workstation: the WatchTraffic stream into a bounded history
(intercept.traffic_history) that the daemon API replays and follows, and Replay with
the shared client of `tp_protocol.replay`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import grpc
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import replay as shared
from tp_protocol.settings import InterceptSettings

from tp_daemon.errors import InterceptFailed, InterceptNotFound, InterceptUsage
from tp_daemon.intercepts.base import Book, Owner
from tp_daemon.streams import Stream, TcpStream


class Traffic:
    def __init__(self, owner: Owner, settings: InterceptSettings, book: Book) -> None:
        self.owner = owner
        self.settings = settings
        self.book = book
        self.history: collections.deque[mpb.TrafficRecord] = collections.deque(
            maxlen=settings.traffic_history)
        self._followers: set[asyncio.Queue[mpb.TrafficRecord]] = set()
        self._rows_only = False  # the manager has no WatchTrafficBatches
        self.mark: Callable[[mpb.TrafficRecord], None] = lambda record: None  # holds' rows

    async def receive(self) -> None:
        """One WatchTraffic stream until it ends (the caller reopens it)."""
        stub, session = self.owner.manager()
        request = mpb.WatchTrafficRequest(session=session, include_unmatched=True)
        if not self._rows_only:  # rows in batches: one message for all that queued up
            call = stub.WatchTrafficBatches(request)
            try:
                async for batch in call:
                    for record in batch.records:
                        self._add(record)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._rows_only = True  # an older manager: one row per message
            finally:
                call.cancel()
        call = stub.WatchTraffic(request)
        try:
            async for record in call:
                self._add(record)
        finally:
            call.cancel()

    def _add(self, record: mpb.TrafficRecord) -> None:
        self.mark(record)
        self.history.append(record)
        for queue in self._followers:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow follower loses its oldest row
            queue.put_nowait(record)

    async def watch(self, request: dpb.WatchTrafficRequest
                    ) -> AsyncIterator[mpb.TrafficRecord]:
        names = set(request.intercept_names)

        def wanted(r: mpb.TrafficRecord) -> bool:
            if names and r.intercept_name not in names:
                return False
            return bool(r.intercept_name) or request.include_unmatched or bool(names)

        queue: asyncio.Queue[mpb.TrafficRecord] = asyncio.Queue(
            maxsize=self.settings.traffic_watch_queue)
        if request.follow:
            self._followers.add(queue)
        try:
            if request.history:
                for record in list(self.history):
                    if wanted(record):
                        yield record
            while request.follow:
                record = await queue.get()
                if wanted(record):
                    yield record
        finally:
            self._followers.discard(queue)

    async def replay(self, request: dpb.ReplayRequest) -> dpb.ReplayResult:
        """Send a kept request again to the local target or the app in the cluster."""
        record = next((r for r in reversed(self.history) if r.id == request.traffic_id), None)
        if record is None and request.HasField("request"):
            record = self._given(request.request)   # a row read from a HAR file
        if record is None:
            raise InterceptNotFound(f"no traffic row {request.traffic_id!r} is kept any more: "
                                    "pick one from `tp traffic`")
        target = request.target
        if target == dpb.REPLAY_TARGET_UNSPECIFIED:
            target = (dpb.REPLAY_TARGET_LOCAL if record.routed_to == mpb.ROUTED_TO_LOCAL
                      else dpb.REPLAY_TARGET_CLUSTER)
        mine = self.book.mine
        info = mine.get(record.intercept_name) or next(
            (ic for ic in mine.values() if (ic.spec.workload, ic.spec.namespace)
             == (record.workload, record.namespace)), None)
        if info is None:
            raise InterceptNotFound(f"none of your intercepts covers {record.workload}."
                                    f"{record.namespace} any more: intercept it again to "
                                    "replay")
        body = bytes(request.body) if request.has_body else bytes(record.request_body_prefix)
        if not request.has_body and record.request_body_truncated:
            raise InterceptUsage("the captured body was truncated: pass the body to replay")
        headers = shared.request_headers(
            ((h.name, h.value) for h in record.request_headers),
            ((h.name, h.value) for h in request.header_overrides))
        local = self.book.local.get(info.spec.name)
        stream: Stream
        try:
            if target == dpb.REPLAY_TARGET_LOCAL:
                stream = await asyncio.wait_for(
                    TcpStream.open(info.spec.target_host or "127.0.0.1", info.spec.target_port),
                    self.settings.local_dial_timeout)
            else:
                port = local.container_port if local else 0
                if not info.pod_ip or not port:
                    raise InterceptFailed("the app's pod address is unknown: intercept again")
                stream = await self.owner.dial(info.pod_ip, port)
        except (OSError, TimeoutError) as e:
            raise InterceptFailed(f"replay could not connect: {e}; is the target up?") from e
        routed = (mpb.ROUTED_TO_LOCAL if target == dpb.REPLAY_TARGET_LOCAL
                  else mpb.ROUTED_TO_CLUSTER)
        new = mpb.TrafficRecord(
            id=f"replay-{record.id}-{time.monotonic_ns()}", intercept_id=record.intercept_id,
            intercept_name=record.intercept_name, client_session=record.client_session,
            workload=record.workload, namespace=record.namespace, pod=record.pod,
            port=record.port, source="replay", routed_to=routed)
        return dpb.ReplayResult(record=await shared.exchange(
            stream, new, method=request.method or record.method,
            target=request.path or record.path, headers=headers, body=body,
            seconds=self.settings.local_dial_timeout + self.owner.settings.rpc_timeout,
            body_limit=self.settings.capture_body_limit,
            redact=self.settings.capture_redact_headers))

    def _given(self, given: mpb.TrafficRecord) -> mpb.TrafficRecord:
        """A request sent with the replay (not captured here): bound to the intercept it
        names, or to your only intercept."""
        record = mpb.TrafficRecord()
        record.CopyFrom(given)
        mine = self.book.mine
        if not record.intercept_name and not record.workload:
            if len(mine) != 1:
                names = ", ".join(sorted(mine)) or "none yet"
                raise InterceptUsage(f"this request names no intercept: say which one to "
                                     f"replay it through (yours: {names})")
            record.intercept_name = next(iter(mine))
        info = mine.get(record.intercept_name) or next(
            (ic for ic in mine.values() if (ic.spec.workload, ic.spec.namespace)
             == (record.workload, record.namespace)), None)
        if info is None:
            names = ", ".join(sorted(mine)) or "none yet"
            raise InterceptUsage(f"no intercept of yours is named {record.intercept_name!r}: "
                                 f"say which one to replay it through (yours: {names})")
        record.intercept_name = info.spec.name
        record.workload, record.namespace = info.spec.workload, info.spec.namespace
        record.id = record.id or "given"
        return record
