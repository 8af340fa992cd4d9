"""The agent's Relay stream: personal intercepts' requests sent with their dial.

`AgentRelay.open` returns a `RelayConnection` at once (no round trip): its first `send`
carries `open` and the request bytes in one frame, and the response arrives on the
same long-lived stream (manager.proto, "Relay rules"). It speaks like an `AgentTunnel`
(send, recv, close_write, abort, finish), with the same 502 reasons. When the manager
has no Relay (older manager: UNIMPLEMENTED) or the intercept's client keeps no Relay
stream (`no_relay`), the connection falls back to a Tunnel and replays what it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from tp_protocol import manager_pb2 as pb
from tp_protocol.aio import spawn
from tp_protocol.relay import Outbox, frame_close_write, frame_error

from tp_cluster.agent import InterceptGone, TunnelFailed
from tp_cluster.agent.tunnel import AgentTunnel

log = logging.getLogger(__name__)

Fallback = Callable[[], Awaitable[AgentTunnel]]


class _Stream:
    """One Relay call of one agent session."""

    def __init__(self, stub: Any, session: Any, buffer_bytes: int, call: Any = None,
                 outbox: Outbox | None = None) -> None:
        self.session = session
        self.outbox = outbox or Outbox(buffer_bytes)
        self.conns: dict[int, RelayConnection] = {}
        self.broken = ""
        self.unsupported = False
        # `call`: a daemon's direct link (link_server), which said hello already
        self._call = call if call is not None else stub.Relay()
        if call is None:
            self.outbox.put(pb.RelayFrame(hello=session))
        self._pump = spawn(self.outbox.pump(self._call.write), "agent-relay-out", log)
        self._reader = spawn(self._read(), "agent-relay-in", log)

    async def _read(self) -> None:
        why = "the relay stream ended"
        try:
            async for batch in self._call:
                for frame in batch.frames:
                    conn = self.conns.get(frame.conn)
                    if conn is not None:
                        conn.deliver(frame)
        except grpc.aio.AioRpcError as exc:
            self.unsupported = exc.code() == grpc.StatusCode.UNIMPLEMENTED
            why = f"the relay broke ({exc.code().name}: {exc.details()})"
        except (OSError, asyncio.IncompleteReadError) as exc:   # a direct link's socket
            why = f"the link broke ({exc})"
        except asyncio.CancelledError:
            why = "the relay was closed"
            raise
        finally:
            self.broken = why
            for conn in list(self.conns.values()):
                conn.deliver(None)
            self._pump.cancel()

    def close(self) -> None:
        self.broken = self.broken or "the relay was closed"
        self._reader.cancel()
        self._call.cancel()


class AgentRelay:
    """The agent's Relay stream, opened on first use and again after it broke."""

    def __init__(self, buffer_bytes: int) -> None:
        self.buffer_bytes = buffer_bytes
        self._stream: _Stream | None = None
        self._ids = itertools.count(1)

    def open(self, stub: Any, session: Any, label: str, to_client: Any, *, wait: float,
             fallback: Fallback) -> RelayConnection:
        stream = self._stream
        if stream is None or stream.session is not session or stream.broken:
            if stream is not None and stream.session is session and stream.unsupported:
                return RelayConnection(None, 0, label, to_client, wait=wait, fallback=fallback)
            if stream is not None:
                stream.close()
            stream = self._stream = _Stream(stub, session, self.buffer_bytes)
        return RelayConnection(stream, next(self._ids), label, to_client, wait=wait,
                               fallback=fallback)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class RelayConnection:
    """One intercepted request's connection on the Relay stream (or its Tunnel fallback)."""

    def __init__(self, stream: _Stream | None, conn: int, label: str, to_client: Any, *,
                 wait: float, fallback: Fallback) -> None:
        self.label = label
        self._stream = stream
        self._conn = conn
        self._to_client = to_client
        self._wait = wait
        self._fallback = fallback
        self._tunnel: AgentTunnel | None = None
        self._inbox: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._opened = False      # the client answered `opened`
        self._sent_open = False
        self._unanswered: list[bytes | None] = []  # sent before `opened` (None: close_write)
        self._ended = False       # error either way, or both sides closed
        self._wrote_close = False
        self._peer_closed = False
        self.superseded: Callable[[], bool] | None = None
        """True once a better path exists (the owner's direct link): not kept then."""
        if stream is not None:
            stream.conns[conn] = self

    # called by the stream's reader
    def deliver(self, frame: Any) -> None:
        self._inbox.append(frame)
        self._arrived.set()

    def _put(self, frame: Any) -> None:
        assert self._stream is not None
        self._stream.outbox.put(frame)

    async def _use_tunnel(self) -> AgentTunnel:
        """Fall back to a Tunnel and replay what went out before it."""
        self._forget()
        tunnel = self._tunnel = await self._fallback()
        for data in self._unanswered:
            if data is None:
                await tunnel.close_write()
            else:
                await tunnel.send(data)
        self._unanswered = []
        return tunnel

    async def send(self, data: bytes) -> None:
        if self._tunnel is not None or self._stream is None:
            await (self._tunnel or await self._use_tunnel()).send(data)
            return
        if not data:
            return
        if self._stream.broken:
            raise TunnelFailed(f"{self.label}: the tunnel broke ({self._stream.broken})")
        if not self._opened:
            self._unanswered.append(data)
        if self._sent_open:
            self._put(pb.RelayFrame(conn=self._conn, data=data))
        else:
            self._sent_open = True
            self._put(pb.RelayFrame(conn=self._conn, open=self._to_client, data=data))
        await self._stream.outbox.room()

    async def recv(self) -> bytes:
        if self._tunnel is not None or self._stream is None:
            return await (self._tunnel or await self._use_tunnel()).recv()
        while True:
            if not self._inbox:
                if self._ended or self._peer_closed:
                    return b""
                self._arrived.clear()
                if self._opened:
                    await self._arrived.wait()
                else:
                    try:
                        async with asyncio.timeout(self._wait):
                            await self._arrived.wait()
                    except TimeoutError:
                        self.abort()
                        raise TunnelFailed(f"{self.label}: the local side did not answer "
                                           f"within {self._wait:g}s") from None
                continue
            frame = self._inbox.popleft()
            if frame is None:
                assert self._stream is not None
                if self._stream.unsupported and not self._opened:
                    return await (await self._use_tunnel()).recv()
                self._ended = True
                raise TunnelFailed(f"{self.label}: the tunnel broke ({self._stream.broken})")
            kind = frame.WhichOneof("kind")
            if kind == "opened":
                self._opened = True
                self._unanswered = []
            elif kind == "error":
                code, message = frame.error.code, frame.error.message
                if code == "no_relay" and not self._opened:
                    return await (await self._use_tunnel()).recv()
                self._ended = True
                self._forget()
                if code == "gone" and not self._opened:
                    raise InterceptGone(f"{self.label}: {message}")
                if not self._opened and code in ("unreachable", "closed", "bad_request"):
                    raise TunnelFailed(f"{self.label}: {message}")
                raise TunnelFailed(f"{self.label}: {code}: {message}")
            elif kind == "close_write":
                self._peer_closed = True
                return b""
            elif frame.data:
                return bytes(frame.data)

    def reusable(self) -> bool:
        """Open both ways with nothing unread: the next request may use it (keep-alive)."""
        return (self._tunnel is None and self._stream is not None and self._opened
                and not (self._ended or self._peer_closed or self._wrote_close
                         or self._inbox or self._stream.broken)
                and not (self.superseded is not None and self.superseded()))

    async def close_write(self) -> None:
        if self._tunnel is not None or self._stream is None:
            await (self._tunnel or await self._use_tunnel()).close_write()
            return
        if self._wrote_close or self._ended:
            return
        self._wrote_close = True
        if not self._opened:
            self._unanswered.append(None)
        self._put(frame_close_write(self._conn))

    def _forget(self) -> None:
        if self._stream is not None:
            self._stream.conns.pop(self._conn, None)

    def abort(self) -> None:
        if self._tunnel is not None:
            self._tunnel.abort()
            return
        if self._stream is not None and not self._ended and self._sent_open:
            self._put(frame_error(self._conn, "reset", "the agent ended the connection"))
        self._ended = True
        self._forget()

    async def finish(self, wait: float) -> None:
        """Close our side and wait (bounded) for the client's side to end cleanly."""
        if self._tunnel is not None:
            await self._tunnel.finish(wait)
            return
        try:
            await self.close_write()
            async with asyncio.timeout(wait):
                while await self.recv():
                    pass
        except (TunnelFailed, TimeoutError) as exc:
            log.debug("%s: relay did not end cleanly: %s", self.label, exc)
            self.abort()
        finally:
            self._ended = True
            self._forget()

    async def close(self) -> None:
        if self._tunnel is not None:
            await self._tunnel.close()
            return
        with contextlib.suppress(Exception):
            if not self._ended:
                self.abort()
