"""A `Tunnel` stream to the traffic-manager used as a byte `Stream`.

The opener sends `open{dial}` and waits for `opened` or `error`; then `data` flows both
ways, `close_write` half-closes, `error` resets (see manager.proto, "Tunnel rules").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc

log = logging.getLogger(__name__)


class TunnelError(ConnectionError):
    """The manager could not dial the destination (or the tunnel broke)."""


class TunnelStream:
    """One TCP connection to a cluster address, dialed by the manager."""

    def __init__(self, call: Any, remote: str) -> None:
        self._call = call
        self.remote = remote
        self._write_closed = False

    @classmethod
    async def open(cls, stub: mgrpc.ManagerStub, session: mpb.SessionInfo, ip: str, port: int,
                   *, dial_timeout: float) -> TunnelStream:
        call = stub.Tunnel()
        try:
            async with asyncio.timeout(dial_timeout):
                await call.write(mpb.TunnelMessage(open=mpb.TunnelOpen(
                    session=session, dial=mpb.Dial(protocol="tcp", ip=ip, port=port))))
                first = await call.read()
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            call.cancel()
            raise TunnelError(f"tunnel to {ip}:{port} failed: {_describe(e)}") from e
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "opened":
            call.cancel()
            why = (f"{first.error.code}: {first.error.message}"
                   if first is not grpc.aio.EOF and first.HasField("error") else "stream ended")
            raise TunnelError(f"tunnel to {ip}:{port} failed: {why}")
        return cls(call, first.opened.remote_address or f"{ip}:{port}")

    async def recv(self) -> bytes:
        while True:
            msg = await self._call.read()
            if msg is grpc.aio.EOF:
                return b""
            kind = msg.WhichOneof("kind")
            if kind == "data":
                if msg.data:
                    return bytes(msg.data)
            elif kind == "close_write":
                return b""
            elif kind == "error":
                raise TunnelError(f"{self.remote}: {msg.error.code}: {msg.error.message}")

    async def send(self, data: bytes) -> None:
        await self._call.write(mpb.TunnelMessage(data=data))

    async def close_write(self) -> None:
        if not self._write_closed:
            self._write_closed = True
            await self._call.write(mpb.TunnelMessage(close_write=mpb.CloseWrite()))
            await self._call.done_writing()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._call.done():
                self._call.cancel()


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__
