"""The agent's end of a `Tunnel` stream for an intercepted connection or request.

Opening sends `open.to_client{intercept_id}`; the manager answers `opened` once the
intercept's client has accepted the dial (it dialed its local destination), or
`error`. The agent gives up after `Settings.intercept.local_dial_timeout` so that an
HTTP caller gets a 502 with the reason instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from tp_protocol import manager_pb2 as pb

from tp_cluster.agent import TunnelFailed

log = logging.getLogger(__name__)


class AgentTunnel:
    def __init__(self, call: Any, label: str) -> None:
        self._call = call
        self._wrote_close = False
        self.label = label

    @classmethod
    async def open(cls, stub: Any, session: Any, intercept_id: str, intercept_name: str, *,
                   source: tuple[str, int], service_port: int, wait: float) -> AgentTunnel:
        """An opened tunnel to the intercept's client; TunnelFailed says why not."""
        call = stub.Tunnel()
        label = f"intercept {intercept_name}"
        try:
            await call.write(pb.TunnelMessage(open=pb.TunnelOpen(
                session=session, to_client=pb.ToClient(
                    intercept_id=intercept_id, source_ip=source[0], source_port=source[1],
                    service_port=service_port))))
            first = await asyncio.wait_for(call.read(), wait)
        except TimeoutError:
            call.cancel()
            raise TunnelFailed(f"{label}: the local side did not answer within "
                               f"{wait:g}s") from None
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise TunnelFailed(f"{label}: the traffic-manager is unreachable "
                               f"({exc.code().name}: {exc.details()})") from None
        if first is grpc.aio.EOF:
            raise TunnelFailed(f"{label}: the traffic-manager closed the tunnel")
        kind = first.WhichOneof("kind")
        if kind == "error":
            call.cancel()
            raise TunnelFailed(f"{label}: {first.error.code}: {first.error.message}")
        if kind != "opened":
            call.cancel()
            raise TunnelFailed(f"{label}: the traffic-manager answered {kind!r}, not 'opened'")
        return cls(call, label)

    async def send(self, data: bytes) -> None:
        if data:
            try:
                await self._call.write(pb.TunnelMessage(data=data))
            except (grpc.aio.AioRpcError, grpc.aio.UsageError):
                raise await self._why_broken() from None

    async def _why_broken(self) -> TunnelFailed:
        """After a failed write: the `error` the other side sent, if it is still unread."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while (message := await self._call.read()) is not grpc.aio.EOF:
                    if message.WhichOneof("kind") == "error":
                        return TunnelFailed(f"{self.label}: {message.error.code}: "
                                            f"{message.error.message}")
        with contextlib.suppress(Exception):
            code = await self._call.code()
            details = await self._call.details()
            return TunnelFailed(f"{self.label}: the tunnel broke ({code.name}: {details})")
        return TunnelFailed(f"{self.label}: the tunnel broke")

    async def close_write(self) -> None:
        """No more data from the agent (TCP half-close on the client's side)."""
        if self._wrote_close:
            return
        self._wrote_close = True
        try:
            await self._call.write(pb.TunnelMessage(close_write=pb.CloseWrite()))
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            raise await self._why_broken() from None

    async def recv(self) -> bytes:
        """The next bytes from the client side; b"" once it closed its side."""
        while True:
            try:
                message = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                raise TunnelFailed(f"{self.label}: the tunnel broke "
                                   f"({exc.code().name}: {exc.details()})") from None
            if message is grpc.aio.EOF:
                return b""
            kind = message.WhichOneof("kind")
            if kind == "data":
                if message.data:
                    return bytes(message.data)
                continue
            if kind == "close_write":
                return b""
            if kind == "error":
                raise TunnelFailed(f"{self.label}: {message.error.code}: {message.error.message}")

    def abort(self) -> None:
        self._call.cancel()

    async def finish(self, wait: float) -> None:
        """Close our side and wait (bounded) for the client's side to end cleanly."""
        try:
            await self.close_write()
            async with asyncio.timeout(wait):
                while await self.recv():
                    pass
        except (TunnelFailed, TimeoutError) as exc:
            log.debug("%s: tunnel did not end cleanly: %s", self.label, exc)
        finally:
            with contextlib.suppress(Exception):
                self._call.cancel()
