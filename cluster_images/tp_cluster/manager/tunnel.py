"""`Tunnel` streams: dialing out from the cluster, and splicing intercepted connections.

See manager.proto for the message rules. Two shapes:

- `dial_out`: a client's stream to a cluster address. The manager opens the TCP
  connection (asyncio, large reads) and pumps both ways; `close_write` maps to TCP
  half-close in each direction; connection failures become `error` messages.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tp_protocol import manager_pb2 as pb

log = logging.getLogger(__name__)

Write = Callable[[Any], Awaitable[None]]


class TunnelAborted(Exception):
    """The peer sent `error` (already forwarded: notify=False) or vanished; the tunnel ends."""

    def __init__(self, message: str, notify: bool = True) -> None:
        super().__init__(message)
        self.notify = notify


def error_message(code: str, message: str) -> Any:
    return pb.TunnelMessage(error=pb.TunnelError(code=code, message=message))


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


async def _run_pair(a: Awaitable[None], b: Awaitable[None], names: tuple[str, str]) -> None:
    """Run both pumps; the first failure cancels the other and propagates."""
    tasks = [asyncio.ensure_future(a), asyncio.ensure_future(b)]
    for task, name in zip(tasks, names, strict=True):
        task.set_name(name)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def dial_out(dial: Any, requests: AsyncIterator[Any], write: Write,
                   dial_timeout: float, chunk: int) -> None:
    """Connect to `dial.ip:dial.port` and pump until both directions are closed."""
    where = f"{dial.ip}:{dial.port}"
    if dial.protocol not in ("", "tcp") or not 0 < dial.port < 65536 or not dial.ip:
        await write(error_message("bad_request", f"cannot dial {dial.protocol} {where}: "
                                  "only tcp to an ip and a port 1-65535"))
        return
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(dial.ip, dial.port, limit=4 * chunk), dial_timeout)
    except (OSError, TimeoutError) as exc:
        await write(_dial_error(exc, where))
        return
    await write(pb.TunnelMessage(opened=pb.TunnelOpened(
        local_address=_address(writer.get_extra_info("sockname")),
        remote_address=_address(writer.get_extra_info("peername")))))

    async def cluster_to_client() -> None:
        while data := await reader.read(chunk):
            await write(pb.TunnelMessage(data=data))
        await write(_close_write())

    async def client_to_cluster() -> None:
        async for message in requests:
            kind = message.WhichOneof("kind")
            if kind == "data":
                writer.write(message.data)
                await writer.drain()
            elif kind == "close_write":
                if writer.can_write_eof():
                    writer.write_eof()
                return
            elif kind == "error":
                raise TunnelAborted(f"client aborted: {message.error.message}")
        raise TunnelAborted("client stream ended without close_write")

    clean = False
    try:
        await _run_pair(cluster_to_client(), client_to_cluster(),
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
            writer.transport.abort()  # an aborted tunnel resets the cluster side too
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


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
        await _run_pair(forward(agent_requests, client.write, "agent"),
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
