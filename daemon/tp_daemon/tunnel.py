"""A `Tunnel` stream to the traffic-manager used as a byte `Stream` (the shared
handshake and stream of `tp_protocol.tunnel`, with the daemon's error class).

`open` dials a cluster address (`open.dial`); `accept` answers an intercept's
DialRequest (`open.accept_dial_id`); `refuse` answers one the workstation cannot serve.
"""

from __future__ import annotations

from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol import tunnel as shared
from tp_protocol.tunnel import CallStream, TunnelRefused


class TunnelBroken(ConnectionError):
    """The manager could not dial the destination (or the tunnel broke)."""


class TunnelStream(CallStream):
    """One TCP connection through the manager."""

    def __init__(self, call: object, remote: str) -> None:
        super().__init__(call, remote, TunnelBroken)
        self.remote = remote

    @classmethod
    async def open(cls, stub: mgrpc.ManagerStub, session: mpb.SessionInfo, ip: str, port: int,
                   *, dial_timeout: float) -> TunnelStream:
        try:
            call, opened = await shared.open_call(stub, mpb.TunnelOpen(
                session=session, dial=mpb.Dial(protocol="tcp", ip=ip, port=port)),
                dial_timeout)
        except TunnelRefused as e:
            raise TunnelBroken(f"tunnel to {ip}:{port} failed: {e}") from e
        return cls(call, opened.remote_address or f"{ip}:{port}")

    @classmethod
    async def accept(cls, stub: mgrpc.ManagerStub, session: mpb.SessionInfo, dial_id: str,
                     remote: str, *, wait: float) -> TunnelStream:
        try:
            call, _ = await shared.open_call(stub, mpb.TunnelOpen(
                session=session, accept_dial_id=dial_id), wait)
        except TunnelRefused as e:
            raise TunnelBroken(f"accepting dial {dial_id} failed: {e}") from e
        return cls(call, remote)

    @staticmethod
    async def refuse(stub: mgrpc.ManagerStub, session: mpb.SessionInfo, dial_id: str,
                     why: str, *, wait: float) -> None:
        await shared.refuse_dial(stub, session, dial_id, why, wait)
