"""Mirrors (`tp wiretap`): the app answers every caller; a copy goes to the workstation.

The caller's exchange is relayed by `http.HttpRouter` exactly as without a mirror. A
`MirrorCopy` collects the request (head and body, the body bounded by
`Settings.intercept.mirror_body_limit`) on the side; once the caller has its answer,
`Mirrors.offer` puts the copy with the cluster's finished row on each matching mirror's
bounded queue (`mirror_queue`) without waiting: a full queue drops the copy and counts
it. Per mirror, `mirror_workers` named tasks send the copies through the same Tunnel
path as intercepted requests (`open.to_client`, the client's local port or cell
handler), marked with the request header `x-tp-mirror: <name>`, and record the local
answer beside the cluster's in one row (`TrafficRecord.local_answer`, mode MIRROR). A
worker keeps its tunnel (HTTP keep-alive) while copies are waiting and closes it once its
queue is empty: a busy mirror does not pay a dial per copy, an idle one holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import h11
from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import spawn
from tp_protocol.replay import CONNECTION_HEADERS
from tp_protocol.settings import InterceptSettings
from tp_protocol.traffic import Recorder

from tp_cluster.agent import TunnelFailed
from tp_cluster.agent.intercepts import Intercept

if TYPE_CHECKING:
    from tp_cluster.agent.http import Context

log = logging.getLogger(__name__)

MIRROR_HEADER = "x-tp-mirror"
"""Request header that marks a mirrored copy (its value: the mirror's name)."""

_DROP_HEADERS = frozenset(h.encode() for h in CONNECTION_HEADERS) | {
    b"content-length", b"transfer-encoding", b"expect", MIRROR_HEADER.encode()}
_copy_ids = itertools.count(1)


class MirrorCopy:
    """The request of one exchange, kept for its mirrors while the caller is served."""

    def __init__(self, ctx: Context, mirrors: list[Intercept], request: Any,
                 limit: int) -> None:
        self.ctx = ctx
        self.mirrors = mirrors
        self.method: bytes = request.method
        self.target: bytes = request.target
        self.headers = [(n, v) for n, v in request.headers.raw_items()
                        if n.lower() not in _DROP_HEADERS]
        self.body = bytearray()
        self.limit = limit
        self.too_big = False

    def add(self, data: bytes) -> None:
        if self.too_big:
            return
        if len(self.body) + len(data) > self.limit:
            self.too_big = True
            self.body.clear()
            return
        self.body += data

    def deliver(self, record: Any) -> None:
        """The caller has its answer (the cluster's row is complete): queue the copies."""
        mirrors = self.ctx.mirrors
        if mirrors is None:
            return
        mirrors.offer(self, record)

    def request_bytes(self, name: str, conn: h11.Connection) -> bytes:
        """The copy as sent: the caller's request, marked, on `conn` (a fresh client)."""
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode()),
                   (MIRROR_HEADER.encode(), name.encode())]
        out = conn.send(h11.Request(method=self.method, target=self.target, headers=headers))
        if self.body:
            out += conn.send(h11.Data(data=bytes(self.body)))
        return out + conn.send(h11.EndOfMessage())


@dataclasses.dataclass
class _Link:
    """One worker's tunnel to the local side, kept while copies queue up (keep-alive)."""

    tunnel: Any   # AgentTunnel
    conn: h11.Connection
    close_timeout: float

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.tunnel.finish(self.close_timeout)


@dataclasses.dataclass
class _Mirror:
    queue: asyncio.Queue[tuple[MirrorCopy, Any]]
    workers: list[asyncio.Task[None]]
    copied: int = 0
    dropped: int = 0


class Mirrors:
    """Every mirror of this agent: its queue, workers and counters."""

    def __init__(self, settings: InterceptSettings, report: Callable[[Any], None],
                 redact: Collection[str] = ()) -> None:
        self.settings = settings
        self.report = report
        self.redact = frozenset(redact)
        self._by_id: dict[str, _Mirror] = {}
        self.changed = False
        """Counters changed since `counters()` was last read."""

    def _mirror(self, ic: Intercept) -> _Mirror:
        m = self._by_id.get(ic.id)
        if m is None:
            queue: asyncio.Queue[tuple[MirrorCopy, Any]] = asyncio.Queue(
                maxsize=self.settings.mirror_queue)
            m = _Mirror(queue, [])
            m.workers = [spawn(self._work(ic, m), f"mirror {ic.name} #{i}", log)
                         for i in range(max(self.settings.mirror_workers, 1))]
            self._by_id[ic.id] = m
        return m

    def offer(self, copy: MirrorCopy, record: Any) -> None:
        """Queue a copy for each of its mirrors; never waits (a full queue drops it)."""
        for ic in copy.mirrors:
            m = self._mirror(ic)
            if copy.too_big or m.queue.full():
                m.dropped += 1
                self.changed = True
                why = (f"request body over {self.settings.mirror_body_limit} bytes"
                       if copy.too_big else "the mirror's queue was full")
                row = self._row(ic, record)
                row.local_answer.error = f"copy dropped: {why}"
                self.report(row)
                continue
            m.queue.put_nowait((copy, record))

    def _row(self, ic: Intercept, record: Any) -> Any:
        row = pb.TrafficRecord()
        row.CopyFrom(record)
        row.id = f"{record.id}-m{next(_copy_ids)}"
        row.intercept_id = ic.id
        row.intercept_name = ic.name
        row.client_session = ic.client_session
        row.mode = pb.TRAFFIC_MODE_MIRROR
        row.developer = ic.owner
        return row

    async def _work(self, ic: Intercept, m: _Mirror) -> None:
        link: _Link | None = None
        try:
            while True:
                if link is not None and m.queue.empty():
                    await link.close()  # no idle tunnel is held
                    link = None
                copy, record = await m.queue.get()
                row = self._row(ic, record)
                try:
                    link = await self._send(ic, copy, row, link)
                except Exception as exc:  # one copy's failure must not stop the mirror
                    log.warning("mirror %s: copy failed: %s", ic.name, exc)
                    row.local_answer.error = row.local_answer.error or f"copy failed: {exc}"
                    link = None
                m.copied += 1
                self.changed = True
                self.report(row)
        finally:
            if link is not None:
                link.tunnel.abort()

    async def _send(self, ic: Intercept, copy: MirrorCopy, row: Any,
                    link: _Link | None) -> _Link | None:
        """Send one copy (over `link` while copies queue up, else a new tunnel) and record
        the answer in `row`; returns the link when it can carry the next copy."""
        ctx = copy.ctx
        answer = row.local_answer
        scratch = pb.TrafficRecord()
        recorder = Recorder(scratch, body_limit=ctx.body_limit, redact=self.redact)
        host, _, port = row.source.rpartition(":")
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.mirror_answer_timeout):
                if link is None:
                    tunnel = await ctx.open_tunnel(ic, (host, int(port or 0)))
                    link = _Link(tunnel, h11.Connection(
                        h11.CLIENT, max_incomplete_event_size=ctx.max_head),
                        ctx.tunnel_close_timeout)
                else:
                    link.conn.start_next_cycle()
                conn = link.conn
                await link.tunnel.send(copy.request_bytes(ic.name, conn))
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await link.tunnel.recv())
                    elif isinstance(event, h11.Response):
                        recorder.response_head(event.status_code, event.reason,
                                               event.headers.raw_items())
                    elif isinstance(event, h11.Data):
                        recorder.response_data(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise TunnelFailed("the local side closed before answering")
        except TimeoutError:
            answer.error = (f"no answer from the local side within "
                            f"{self.settings.mirror_answer_timeout:g}s")
        except (TunnelFailed, OSError, h11.ProtocolError) as exc:
            answer.error = str(exc) or type(exc).__name__
        if link is not None and (answer.error or link.conn.our_state is not h11.DONE
                                 or link.conn.their_state is not h11.DONE):
            if answer.error:
                link.tunnel.abort()
            await link.close()
            link = None
        recorder.finish()
        answer.status = scratch.status
        answer.reason = scratch.reason
        answer.response_headers.extend(scratch.response_headers)
        answer.response_body_prefix = scratch.response_body_prefix
        answer.response_body_truncated = scratch.response_body_truncated
        answer.response_size = scratch.response_size
        answer.duration_ms = (time.perf_counter() - start) * 1000.0
        return link

    def counters(self) -> list[Any]:
        """Totals per mirror (and clears `changed`)."""
        self.changed = False
        return [pb.MirrorCounters(intercept_id=iid, copied=m.copied, dropped=m.dropped)
                for iid, m in self._by_id.items()]

    def stats(self, intercept_id: str) -> tuple[int, int]:
        """(copied, dropped) of one mirror so far."""
        m = self._by_id.get(intercept_id)
        return (m.copied, m.dropped) if m else (0, 0)

    def keep(self, ids: Collection[str]) -> None:
        """Stop the workers of mirrors that are gone (queued copies go with them)."""
        for iid in [i for i in self._by_id if i not in ids]:
            for task in self._by_id.pop(iid).workers:
                task.cancel()

    async def stop(self) -> None:
        tasks = [t for m in self._by_id.values() for t in m.workers]
        self._by_id.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
