"""The `Tunnel` stream's rules, written once (manager.proto, "Tunnel rules").

Opening side (daemon dials and accepts, agent hands over connections): `open_call`
sends `open` and waits for `opened` or `error`; `refuse_dial` answers a DialRequest
the client cannot serve. Accepting side (manager): `first_open` reads the opener's
`open`; `error_message` builds the `error` it answers with. After the handshake
`CallStream` carries bytes over the call: `data` both ways, `close_write` half-closes,
`error` resets. Each component turns `TunnelRefused` / a broken stream into its own
error class (the `fail` factory), so its callers keep catching what they know.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from tp_protocol import manager_pb2 as mpb
from tp_protocol.errors import TpJupyterError


class TunnelRefused(TpJupyterError, ConnectionError):
    """The tunnel did not open: `code` is the TunnelError code (or "timeout",
    "unreachable", "closed" when the manager did not answer)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def error_message(code: str, message: str) -> mpb.TunnelMessage:
    return mpb.TunnelMessage(error=mpb.TunnelError(code=code, message=message))


def _rpc_text(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


async def open_call(stub: Any, opening: mpb.TunnelOpen, wait: float
                    ) -> tuple[Any, mpb.TunnelOpened]:
    """A Tunnel call past its handshake: (call, the manager's `opened`)."""
    call = stub.Tunnel()
    try:
        async with asyncio.timeout(wait):
            await call.write(mpb.TunnelMessage(open=opening))
            first = await call.read()
    except TimeoutError as exc:
        call.cancel()
        raise TunnelRefused("timeout", f"no answer within {wait:g}s") from exc
    except grpc.aio.AioRpcError as exc:
        call.cancel()
        raise TunnelRefused("unreachable", "the traffic-manager is unreachable "
                                           f"({_rpc_text(exc)})") from exc
    if first is grpc.aio.EOF:
        call.cancel()
        raise TunnelRefused("closed", "the traffic-manager closed the tunnel")
    kind = first.WhichOneof("kind")
    if kind == "error":
        call.cancel()
        raise TunnelRefused(first.error.code, first.error.message)
    if kind != "opened":
        call.cancel()
        raise TunnelRefused("bad_request", f"the traffic-manager answered {kind!r}, "
                                           "not 'opened'")
    return call, first.opened


async def refuse_dial(stub: Any, session: mpb.SessionInfo, dial_id: str, why: str,
                      wait: float) -> None:
    """Answer DialRequest `dial_id` with `refused` (the agent's caller gets a 502 with
    `why`); bounded by `wait` seconds, failures ignored (the dial then times out)."""
    call = stub.Tunnel()
    with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError):
        async with asyncio.timeout(wait):
            await call.write(mpb.TunnelMessage(open=mpb.TunnelOpen(
                session=session, accept_dial_id=dial_id,
                refused=mpb.TunnelError(code="refused", message=why))))
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                pass
    call.cancel()


async def first_open(requests: AsyncIterator[mpb.TunnelMessage], wait: float
                     ) -> mpb.TunnelOpen | None:
    """The opener's `open` (accepting side); None when the stream starts otherwise."""
    try:
        first = await asyncio.wait_for(anext(requests), wait)
    except (StopAsyncIteration, TimeoutError):
        return None
    return first.open if first.WhichOneof("kind") == "open" else None


class CallStream:
    """Bytes over an opened Tunnel call; failures raise `fail(text)`."""

    def __init__(self, call: Any, label: str,
                 fail: Callable[[str], Exception] = ConnectionError) -> None:
        self._call = call
        self.label = label
        self._fail = fail
        self._wrote_close = False

    async def recv(self) -> bytes:
        """The next bytes from the far side; b"" once it closed its side."""
        while True:
            try:
                message = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                raise self._fail(f"{self.label}: the tunnel broke ({_rpc_text(exc)})") from None
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
                raise self._fail(f"{self.label}: {message.error.code}: {message.error.message}")

    async def send(self, data: bytes) -> None:
        if data:
            try:
                await self._call.write(mpb.TunnelMessage(data=data))
            except (grpc.aio.AioRpcError, grpc.aio.UsageError):
                raise await self._why_broken() from None

    async def close_write(self) -> None:
        """No more data from this side (TCP half-close on the far side)."""
        if self._wrote_close:
            return
        self._wrote_close = True
        try:
            await self._call.write(mpb.TunnelMessage(close_write=mpb.CloseWrite()))
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            raise await self._why_broken() from None

    async def _why_broken(self) -> Exception:
        """After a failed write: the `error` the other side sent, if it is still unread."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while (message := await self._call.read()) is not grpc.aio.EOF:
                    if message.WhichOneof("kind") == "error":
                        return self._fail(f"{self.label}: {message.error.code}: "
                                          f"{message.error.message}")
        with contextlib.suppress(Exception):
            code = await self._call.code()
            details = await self._call.details()
            return self._fail(f"{self.label}: the tunnel broke ({code.name}: {details})")
        return self._fail(f"{self.label}: the tunnel broke")

    def abort(self) -> None:
        self._call.cancel()

    async def fail(self, code: str, message: str) -> None:
        """End the tunnel with an `error` the far side reports (e.g. in its 502)."""
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):
            await self._call.write(error_message(code, message))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._call.done():
                self._call.cancel()
