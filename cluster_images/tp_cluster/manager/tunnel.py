"""`Tunnel` streams: dialing out from the cluster, and splicing intercepted connections.

See manager.proto for the message rules. Two shapes:

- `dial_out`: a client's stream to a cluster address. The manager opens the TCP
  connection and pumps both ways; `close_write` maps to TCP half-close in each
  direction; connection failures become `error` messages. Received bytes are handed
  on as the kernel delivered them (`_Socket`, no StreamReader buffer copies), joined
  only when several chunks wait, so a busy connection sends few large messages.
- `splice`: an agent's stream for an intercepted connection, joined to the stream on
  which the owning client accepted the dial (`accept_dial_id`). Messages are
  forwarded as they are; the tunnel ends after both `close_write`s or one `error`.

Errors never escape as gRPC failures: a tunnel that cannot go on sends `error` and
ends its stream normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from tp_protocol import manager_pb2 as pb
from tp_protocol import tunnel as shared_tunnel
from tp_protocol.pumps import run_pair

from tp_cluster.errors import ClusterError

log = logging.getLogger(__name__)

Write = Callable[[Any], Awaitable[None]]


class TunnelAborted(ClusterError):
    """The peer sent `error` (already forwarded: notify=False) or vanished; the tunnel ends."""

    def __init__(self, message: str, notify: bool = True) -> None:
        super().__init__(message)
        self.notify = notify


error_message = shared_tunnel.error_message


def _close_write() -> Any:
    message = pb.TunnelMessage()
    message.close_write.SetInParent()
    return message


def _address(sock_name: Any) -> str:
    if isinstance(sock_name, tuple) and len(sock_name) >= 2:
        host = str(sock_name[0])
        return f"[{host}]:{sock_name[1]}" if ":" in host else f"{host}:{sock_name[1]}"
    return ""


def _dial_error(exc: BaseException, where: str) -> Any:
    if isinstance(exc, TimeoutError):
        return error_message("timeout", f"connecting to {where} timed out")
    if isinstance(exc, ConnectionRefusedError):
        return error_message("refused", f"connection to {where} refused")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return error_message("unreachable", f"{where} is unreachable from the cluster")
    return error_message("internal", f"cannot connect to {where}: {exc}")


class _Socket(asyncio.Protocol):
    """A TCP connection read chunk by chunk: `read` returns what arrived, up to `chunk`.

    Reading pauses while more than `4 * chunk` bytes wait (back-pressure on a slow
    tunnel); writes wait for the transport to drain.
    """

    def __init__(self, chunk: int) -> None:
        self._chunk = chunk
        self._high = 4 * chunk
        self._parts: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._paused = False
        self._can_read: asyncio.Event = asyncio.Event()
        self._can_write: asyncio.Event = asyncio.Event()
        self._can_write.set()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a socket transport (uvloop's are not asyncio.Transport subclasses, same methods)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        self._can_read.set()
        if self._size > self._high and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._can_read.set()
        return True  # keep the write side open: the client may still be sending

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._exc = exc
        self._can_read.set()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def read(self) -> bytes:
        """The next bytes (b"" at EOF); raises the connection's error if it broke."""
        while not self._parts:
            if self._eof:
                if self._exc is not None:
                    raise self._exc
                return b""
            self._can_read.clear()
            await self._can_read.wait()
        data = self._parts.popleft()
        if self._parts and len(data) < self._chunk:
            pieces = [data]
            size = len(data)
            while self._parts and size + len(self._parts[0]) <= self._chunk:
                size += len(self._parts[0])
                pieces.append(self._parts.popleft())
            data = b"".join(pieces)
        self._size -= len(data)
        if self._paused and self._size <= self._chunk and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        assert self.transport is not None
        if self._exc is not None or self.transport.is_closing():
            raise ConnectionResetError("connection lost")
        self.transport.write(data)
        await self._can_write.wait()
        if self._exc is not None:
            raise self._exc


async def dial_out(dial: Any, requests: AsyncIterator[Any], write: Write,
                   dial_timeout: float, chunk: int) -> None:
    """Connect to `dial.ip:dial.port` and pump until both directions are closed."""
    where = f"{dial.ip}:{dial.port}"
    if dial.protocol not in ("", "tcp") or not 0 < dial.port < 65536 or not dial.ip:
        await write(error_message("bad_request", f"cannot dial {dial.protocol} {where}: "
                                  "only tcp to an ip and a port 1-65535"))
        return
    loop = asyncio.get_running_loop()
    try:
        transport, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _Socket(chunk), dial.ip, dial.port), dial_timeout)
    except (OSError, TimeoutError) as exc:
        await write(_dial_error(exc, where))
        return
    await write(pb.TunnelMessage(opened=pb.TunnelOpened(
        local_address=_address(transport.get_extra_info("sockname")),
        remote_address=_address(transport.get_extra_info("peername")))))

    async def cluster_to_client() -> None:
        while data := await conn.read():
            await write(pb.TunnelMessage(data=data))
        await write(_close_write())

    async def client_to_cluster() -> None:
        async for message in requests:
            kind = message.WhichOneof("kind")
            if kind == "data":
                await conn.write(message.data)
            elif kind == "close_write":
                if transport.can_write_eof():
                    transport.write_eof()
                return
            elif kind == "error":
                raise TunnelAborted(f"client aborted: {message.error.message}")
        raise TunnelAborted("client stream ended without close_write")

    clean = False
    try:
        await run_pair(cluster_to_client(), client_to_cluster(),
                       (f"tunnel-in {where}", f"tunnel-out {where}"))
        clean = True
    except TunnelAborted as exc:
        log.debug("tunnel to %s aborted: %s", where, exc)
    except OSError as exc:
        log.debug("tunnel to %s reset: %s", where, exc)
        with contextlib.suppress(Exception):
            await write(error_message("reset", f"connection to {where} reset: {exc}"))
    finally:
        if not clean:
            transport.abort()  # an aborted tunnel resets the cluster side too
        transport.close()


@dataclass
class Endpoint:
    """The client's side of a spliced tunnel, handed over by its accept stream."""

    requests: AsyncIterator[Any]
    write: Write
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


async def splice(agent_requests: AsyncIterator[Any], agent_write: Write,
                 client: Endpoint, label: str) -> None:
    """Forward messages both ways until both `close_write`s or an `error`."""
    opened = pb.TunnelMessage(opened=pb.TunnelOpened())

    async def forward(source: AsyncIterator[Any], sink: Write, who: str) -> None:
        async for message in source:
            await sink(message)
            kind = message.WhichOneof("kind")
            if kind == "close_write":
                return
            if kind == "error":
                raise TunnelAborted(f"{who} sent error: {message.error.message}", notify=False)
        raise TunnelAborted(f"{who} stream ended without close_write")

    try:
        await agent_write(opened)
        await client.write(opened)
        await run_pair(forward(agent_requests, client.write, "agent"),
                       forward(client.requests, agent_write, "client"),
                       (f"splice-agent {label}", f"splice-client {label}"))
    except TunnelAborted as exc:
        log.debug("spliced tunnel %s ended: %s", label, exc)
        for write in (agent_write, client.write) if exc.notify else ():
            with contextlib.suppress(Exception):
                await write(error_message("reset", str(exc)))
    except Exception as exc:
        log.debug("spliced tunnel %s failed: %s", label, exc)
        for write in (agent_write, client.write):
            with contextlib.suppress(Exception):
                await write(error_message("reset", f"tunnel failed: {exc}"))
    finally:
        if not client.done.done():
            client.done.set_result(None)
