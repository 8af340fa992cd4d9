"""Intercepted connections: each DialRequest on the ReceiveDials stream dials the
intercept's local target and accepts the Tunnel (`open.accept_dial_id`).

When nothing listens locally the accept carries `refused`, so the agent answers 502
with that reason at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.aio import spawn
from tp_protocol.settings import InterceptSettings

from tp_daemon.intercepts.base import Owner
from tp_daemon.intercepts.hold import Holds
from tp_daemon.intercepts.relay import ClientRelay
from tp_daemon.streams import READ_BUFFER, splice
from tp_daemon.tunnel import TunnelBroken, TunnelStream

log = logging.getLogger(__name__)


class Dials:
    def __init__(self, owner: Owner, settings: InterceptSettings) -> None:
        self.owner = owner
        self.settings = settings
        self.tasks: set[asyncio.Task[None]] = set()
        self.holds: Holds | None = None   # set by Intercepts: held intercepts go there
        self.relay = ClientRelay(settings)
        self.relay.declines = lambda name: self.holds is not None and self.holds.active(name)

    async def receive(self) -> None:
        """One ReceiveDials stream until it ends (the caller reopens it)."""
        stub, session = self.owner.manager()
        call = stub.ReceiveDials(session)
        # personal intercepts' requests come on the Relay stream, beside this one
        relay = spawn(self.relay.run(stub, session), "tp-relay", log)
        try:
            async for request in call:
                task = spawn(self._answer(stub, session, request),
                             f"tp-dial-{request.dial_id}", log)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        finally:
            call.cancel()
            relay.cancel()
            with contextlib.suppress(BaseException):
                await relay

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.relay.stop()

    async def _answer(self, stub: mgrpc.ManagerStub, session: mpb.SessionInfo,
                      request: mpb.DialRequest) -> None:
        host, port = request.target_host or "127.0.0.1", request.target_port
        name = request.intercept_id.partition(":")[2] or request.intercept_id
        if self.holds is not None and self.holds.active(name):
            info = self.holds.book.mine.get(name)
            mirror = info is not None and info.spec.mirror   # its dials are copies
            await self.holds.serve(stub, session, request, name,
                                   mode="mirror" if mirror else "intercept")
            return
        why = ""
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            conn = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_BUFFER),
                self.settings.local_dial_timeout)
        except TimeoutError:
            why = (f"the workstation's {host}:{port} did not answer within "
                   f"{self.settings.local_dial_timeout:g}s")
        except OSError as e:
            why = f"nothing answers on the workstation's {host}:{port} ({e.strerror or e})"
        timeout = self.owner.settings.dial_timeout
        if conn is None:
            why += f"; start the local service or run `tp leave {name}`"
            log.info("intercept %s: %s", name, why)
            with contextlib.suppress(TunnelBroken):
                await TunnelStream.refuse(stub, session, request.dial_id, why, wait=timeout)
            return
        reader, writer = conn
        try:
            tunnel = await TunnelStream.accept(
                stub, session, request.dial_id, f"{request.source_ip}:{request.source_port}",
                wait=timeout)
        except TunnelBroken as e:
            log.info("accepting dial %s failed: %s", request.dial_id, e)
            writer.close()
            return
        await splice(reader, writer, tunnel, f"tp-dial-{request.dial_id}")

