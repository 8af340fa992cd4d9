"""The agent's end of a `Tunnel` stream for an intercepted connection or request.

Opening sends `open.to_client{intercept_id}`; the manager answers `opened` once the
intercept's client has accepted the dial (it dialed its local destination), or
`error`. The agent gives up after `Settings.intercept.local_dial_timeout` so that an
HTTP caller gets a 502 with the reason instead of waiting. The handshake and the byte
stream are `tp_protocol.tunnel`'s; failures are `TunnelFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.tunnel import CallStream, TunnelRefused, open_call

from tp_cluster.agent import InterceptGone, TunnelFailed

log = logging.getLogger(__name__)


class AgentTunnel(CallStream):
    def __init__(self, call: Any, label: str) -> None:
        super().__init__(call, label, TunnelFailed)

    @classmethod
    async def open(cls, stub: Any, session: Any, intercept_id: str, intercept_name: str, *,
                   source: tuple[str, int], service_port: int, wait: float) -> AgentTunnel:
        """An opened tunnel to the intercept's client; TunnelFailed says why not."""
        label = f"intercept {intercept_name}"
        try:
            call, _ = await open_call(stub, pb.TunnelOpen(
                session=session, to_client=pb.ToClient(
                    intercept_id=intercept_id, source_ip=source[0], source_port=source[1],
                    service_port=service_port)), wait)
        except TunnelRefused as exc:
            if exc.code == "gone":
                raise InterceptGone(f"{label}: {exc.message}") from None
            if exc.code == "timeout":
                raise TunnelFailed(f"{label}: the local side did not answer within "
                                   f"{wait:g}s") from None
            known = exc.code in ("unreachable", "closed", "bad_request")
            raise TunnelFailed(f"{label}: {exc.message if known else exc}") from None
        return cls(call, label)

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
            await self.close()
