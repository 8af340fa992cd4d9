"""The client's Relay stream: intercepted requests that arrive with their dial.

Each `dial` frame (manager.proto, "Relay rules") carries the first request bytes: the
daemon connects to the intercept's local target, answers `opened` (or `error{refused}`
with the same reason a refused Tunnel accept gives), writes the bytes, and relays the
connection's frames both ways. One stream carries every connection, so a matched
request costs no handshake through the port-forward. `Dials.receive` runs it beside
ReceiveDials (which still serves global intercepts and agents that use Tunnels).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import grpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn
from tp_protocol.pumps import CHUNK, READ_BUFFER, run_pair
from tp_protocol.relay import Outbox, frame_close_write, frame_error
from tp_protocol.settings import InterceptSettings

log = logging.getLogger(__name__)


class _Ended(Exception):
    """The agent side sent `error`: reset the local connection."""


class ClientRelay:
    def __init__(self, settings: InterceptSettings) -> None:
        self.settings = settings
        self.tasks: set[asyncio.Task[None]] = set()
        self.declines: Callable[[str], bool] = lambda name: False
        """Intercepts whose requests must come through a Tunnel (held ones: the daemon
        reads those requests itself); their dials get `no_relay`."""
        self.relayed: dict[str, int] = {}
        """Dials per intercept name that came through the manager (agentlink's status)."""

    async def run(self, stub: Any, session: mpb.SessionInfo) -> None:
        """One Relay stream until it ends; an older manager without Relay: return."""
        outbox = Outbox(self.settings.relay_buffer_bytes)
        outbox.put(mpb.RelayFrame(hello=session))
        call = stub.Relay()
        pump = spawn(outbox.pump(call.write), "tp-relay-out", log)
        inboxes: dict[int, asyncio.Queue[Any]] = {}
        try:
            async for batch in call:
                for frame in batch.frames:
                    if frame.WhichOneof("kind") == "dial":
                        name = frame.dial.intercept_id.partition(":")[2]
                        self.relayed[name] = self.relayed.get(name, 0) + 1
                        inbox: asyncio.Queue[Any] = asyncio.Queue()
                        inboxes[frame.conn] = inbox
                        task = spawn(self._serve(frame, inbox, outbox, inboxes),
                                     f"tp-relay-{frame.conn}", log)
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                    elif (inbox_ := inboxes.get(frame.conn)) is not None:
                        inbox_.put_nowait(frame)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                log.info("relay stream ended: %s", exc.details())
        finally:
            for inbox in inboxes.values():
                inbox.put_nowait(None)
            pump.cancel()
            call.cancel()

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, dial: Any, inbox: asyncio.Queue[Any], outbox: Outbox,
                     inboxes: dict[int, asyncio.Queue[Any]]) -> None:
        conn = dial.conn
        request = dial.dial
        host, port = request.target_host or "127.0.0.1", request.target_port
        name = request.intercept_id.partition(":")[2] or request.intercept_id
        if self.declines(name):
            outbox.put(frame_error(conn, "no_relay", f"intercept {name} is held: use a Tunnel"))
            inboxes.pop(conn, None)
            return
        why = ""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_BUFFER),
                self.settings.local_dial_timeout)
        except TimeoutError:
            why = (f"the workstation's {host}:{port} did not answer within "
                   f"{self.settings.local_dial_timeout:g}s")
        except OSError as e:
            why = f"nothing answers on the workstation's {host}:{port} ({e.strerror or e})"
        if why:
            why += f"; start the local service or run `tp leave {name}`"
            log.info("intercept %s: %s", name, why)
            outbox.put(frame_error(conn, "refused", why))
            inboxes.pop(conn, None)
            return
        outbox.put(mpb.RelayFrame(conn=conn, opened=mpb.TunnelOpened()))
        if dial.data:
            writer.write(dial.data)

        async def up() -> None:  # local answer -> agent
            while data := await reader.read(CHUNK):
                outbox.put(mpb.RelayFrame(conn=conn, data=data))
                await outbox.room()
            outbox.put(frame_close_write(conn))

        async def down() -> None:  # agent -> local
            while (frame := await inbox.get()) is not None:
                kind = frame.WhichOneof("kind")
                if kind == "close_write":
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if kind == "error":
                    raise _Ended(frame.error.message)
                writer.write(frame.data)
                await writer.drain()
            raise _Ended("the relay stream ended")

        clean = False
        try:
            await run_pair(up(), down(), (f"tp-relay-{conn}-up", f"tp-relay-{conn}-down"))
            clean = True
        except _Ended as e:
            log.debug("relayed connection %d ended: %s", conn, e)
        except OSError as e:
            outbox.put(frame_error(conn, "reset", f"the workstation's {host}:{port} reset "
                                                  f"the connection: {e}"))
        finally:
            inboxes.pop(conn, None)
            if not clean:
                writer.transport.abort()
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
