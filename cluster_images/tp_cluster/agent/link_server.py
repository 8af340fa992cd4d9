"""Direct links from the owning daemons (manager.proto "Agent links").

The agent listens on 127.0.0.1 inside its pod, so only the pod itself and callers of
pods/portforward reach it. A daemon's first frame is `link_hello` with (intercept id,
link key) pairs; the pairs whose key equals (constant-time) the key the manager gave
this agent for that intercept are kept, the others dropped, and a link left with none is
answered and closed. `stream_for` gives the link that serves an intercept's matched
requests; they travel as on the manager's Relay (`relay.RelayConnection` on a `_Stream`
whose call is the link), so keep-alive, `gone`, `no_relay` and the 502s are the Relay's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
from collections.abc import Callable
from typing import Any

from tp_protocol import linkframes
from tp_protocol import manager_pb2 as pb
from tp_protocol.relay import Outbox
from tp_protocol.settings import InterceptSettings

from tp_cluster.agent.intercepts import Intercept, Registry
from tp_cluster.agent.relay import Fallback, RelayConnection, _Stream

log = logging.getLogger(__name__)


class _LinkCall:
    """A link's byte stream with the face of a Relay gRPC call: `write` one batch, iterate
    the batches that arrive (`link_hello`s are answered here, never passed on)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limit: int, on_hello: Callable[[Any], None]) -> None:
        self.reader, self.writer, self.limit = reader, writer, limit
        self.on_hello = on_hello

    async def read_batch(self) -> Any:
        """One batch; EOF at a frame boundary: None."""
        try:
            head = await self.reader.readexactly(linkframes.HEADER.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        (size,) = linkframes.HEADER.unpack(head)
        try:
            linkframes.check_size(size, self.limit)
            return linkframes.decode_body(await self.reader.readexactly(size))
        except linkframes.LinkFrameError as exc:
            raise ConnectionError(str(exc)) from exc

    async def write(self, batch: Any) -> None:
        try:
            self.writer.write(linkframes.encode(batch))
            await self.writer.drain()
        except OSError as exc:   # the reader sees the end and says why
            log.debug("link write failed: %s", exc)
            self.writer.transport.abort()

    def __aiter__(self) -> _LinkCall:
        return self

    async def __anext__(self) -> Any:
        while True:
            batch = await self.read_batch()
            if batch is None:
                raise StopAsyncIteration
            hellos = [f for f in batch.frames if f.WhichOneof("kind") == "link_hello"]
            if not hellos:
                return batch
            for frame in hellos:
                self.on_hello(frame.link_hello)
            rest = [f for f in batch.frames if f.WhichOneof("kind") != "link_hello"]
            if rest:
                return pb.RelayBatch(frames=rest)

    def cancel(self) -> None:
        self.writer.transport.abort()


class _EagerOutbox(Outbox):
    """A link's outbox without the pump's task wake-up per batch: the frames put during one
    turn of the event loop go out as one link frame at its end (`call_soon`), so that
    under load one frame carries several requests through the port-forward (each frame
    costs the kubelet, the API server and the daemon a WebSocket message). When frames
    wait for the pump already, or the socket's own buffer is full, frames queue there."""

    def __init__(self, limit: int, transport: asyncio.WriteTransport) -> None:
        super().__init__(limit)
        self.transport = transport
        self._turn: list[Any] = []
        self._loop = asyncio.get_running_loop()

    def _writable(self) -> bool:
        return (not self._frames and not self.closed and not self.transport.is_closing()
                and self.transport.get_write_buffer_size() < self.limit)

    def put(self, frame: Any) -> None:
        if self._turn:
            self._turn.append(frame)   # behind the frames of this turn, in order
        elif self._writable():
            self._turn.append(frame)
            self._loop.call_soon(self._write_turn)
        else:
            super().put(frame)

    def _write_turn(self) -> None:
        frames, self._turn = self._turn, []
        if self._writable():
            self.transport.write(linkframes.encode(pb.RelayBatch(frames=frames)))
            return
        for frame in frames:
            super().put(frame)


class _Link:
    """One daemon's link: the intercepts it proved keys for, and its Relay stream."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.keys: dict[str, str] = {}     # intercept id -> key the daemon showed
        self.stream: _Stream | None = None
        self.requests = 0


class LinkServer:
    def __init__(self, registry: Registry, settings: InterceptSettings,
                 host: str = "127.0.0.1", port: int | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.host = host
        self.port = settings.agent_link_port if port is None else port
        self._server: asyncio.Server | None = None
        self._by_id: dict[str, _Link] = {}
        self._conns: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self.refused = 0
        """Links closed for want of a valid key (tests and logs)."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("direct links served on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in set(self._by_id.values()):
            if link.stream is not None:
                link.stream.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    # --- routing (called per matched request) --------------------------------------------

    def stream_for(self, intercept: Intercept) -> tuple[_Link, _Stream] | None:
        link = self._by_id.get(intercept.id)
        if link is None or link.stream is None or link.stream.broken:
            return None
        key = link.keys.get(intercept.id, "")
        if not (intercept.link_key and hmac.compare_digest(key.encode(),
                                                           intercept.link_key.encode())):
            return None
        return link, link.stream

    def open(self, intercept: Intercept, to_client: Any, *, wait: float,
             fallback: Fallback) -> RelayConnection | None:
        """A connection on the daemon's own link for this intercept, else None (the caller
        uses the manager's Relay)."""
        found = self.stream_for(intercept)
        if found is None:
            return None
        link, stream = found
        link.requests += 1
        return RelayConnection(stream, next(self._ids), f"intercept {intercept.name}",
                               to_client, wait=wait, fallback=fallback)

    # --- links ---------------------------------------------------------------------------

    def _valid(self, keys: Any) -> dict[str, str]:
        """The pairs whose key is the one the manager gave for an intercept of ours."""
        mine = {ic.id: ic.link_key for ic in self.registry.all() if ic.link_key}
        valid = {}
        for pair in keys:
            want = mine.get(pair.intercept_id, "")
            # compared even when unknown, so an answer's timing says nothing of the keys
            ok = hmac.compare_digest(pair.key.encode(), (want or "\0").encode())
            if ok and want:
                valid[pair.intercept_id] = pair.key
        return valid

    def _take(self, link: _Link, keys: dict[str, str]) -> None:
        for iid in list(link.keys):
            if self._by_id.get(iid) is link:
                del self._by_id[iid]
        link.keys = keys
        for iid in keys:
            self._by_id[iid] = link   # a newer link of the same intercept replaces the older

    def _drop(self, link: _Link) -> None:
        for iid in link.keys:
            if self._by_id.get(iid) is link:
                del self._by_id[iid]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        peer = writer.get_extra_info("peername")
        link = _Link(f"{peer[0]}:{peer[1]}" if peer else "?")
        call: _LinkCall | None = None
        try:
            writer.transport.set_write_buffer_limits(high=self.settings.agent_chunk * 4)

            def on_hello(hello: Any) -> None:
                # a later hello replaces the pairs (an intercept re-created with a new key)
                valid = self._valid(hello.keys)
                self._take(link, valid)
                refused = len(hello.keys) - len(valid)
                note = f"{refused} key(s) refused" if refused else ""
                if call is not None and link.stream is not None:
                    link.stream.outbox.put(linkframes.hello([(i, "") for i in valid], note))
                log.info("link %s serves %s%s", link.peer, sorted(valid) or "nothing",
                         f" ({note})" if note else "")

            call = _LinkCall(reader, writer, self.settings.link_max_frame_bytes, on_hello)
            async with asyncio.timeout(self.settings.link_hello_timeout):
                first = await call.read_batch()
            frames = list(first.frames) if first is not None else []
            if not frames or frames[0].WhichOneof("kind") != "link_hello":
                self.refused += 1
                log.info("link %s closed: it did not start with link_hello", link.peer)
                return
            valid = self._valid(frames[0].link_hello.keys)
            if not valid:
                self.refused += 1
                log.info("link %s closed: no valid link key", link.peer)
                with contextlib.suppress(OSError):
                    await call.write(pb.RelayBatch(frames=[linkframes.hello(
                        [], "no valid link key for an intercept of this agent")]))
                return
            self._take(link, valid)
            stream = link.stream = _Stream(
                None, None, self.settings.relay_buffer_bytes, call,
                _EagerOutbox(self.settings.relay_buffer_bytes, writer.transport))
            stream.outbox.put(linkframes.hello([(i, "") for i in valid]))
            log.info("link %s serves %s", link.peer, sorted(valid))
            for frame in frames[1:]:
                if frame.WhichOneof("kind") == "link_hello":
                    on_hello(frame.link_hello)
            await stream._reader   # until the link ends
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("link %s ended: %s", link.peer, exc or type(exc).__name__)
        except asyncio.CancelledError:
            pass  # stop(); a server callback has nobody to re-raise to
        finally:
            self._drop(link)
            if link.stream is not None:
                link.stream.close()
            if link.requests:
                log.info("link %s carried %d matched requests", link.peer, link.requests)
            writer.transport.abort()
            self._conns.discard(task)

