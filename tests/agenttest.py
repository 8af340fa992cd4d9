"""Helpers of the agent tests: polling, a one-connection HTTP client, and `FakeDaemon` --
a client speaking the real proto (ArriveAsClient, CreateIntercept, ReceiveDials, Tunnel
accept) that dials local destinations as the workstation daemon does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import grpc
import h11
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb
from waiting import wait_until as wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeDaemon:
    """The workstation side of intercepts, over the real proto (a stand-in for tp_daemon)."""

    def __init__(self, manager: Any, name: str) -> None:
        self.manager = manager
        self.name = name
        self.session: Any = None
        self.tasks: list[asyncio.Task[None]] = []
        self.accepted = 0

    async def arrive(self, remain: bool = True) -> FakeDaemon:
        self.session = await self.manager.stub.ArriveAsClient(
            pb.ClientInfo(name=self.name, namespace="demo", version=VERSION), timeout=5)
        self.tasks.append(asyncio.create_task(self._dials(), name=f"dials-{self.name}"))
        if remain:
            self.tasks.append(asyncio.create_task(self._remain(), name=f"remain-{self.name}"))
        return self

    def stop_remaining(self) -> None:
        for task in self.tasks:
            if task.get_name().startswith("remain-"):
                task.cancel()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _remain(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self.manager.stub.Remain(pb.RemainRequest(session=self.session), timeout=5)

    async def intercept(self, name: str, target_port: int, *, matches: dict[str, str] | None = None,
                        service_port: str = "", wait_state: int | None =
                        pb.INTERCEPT_STATE_ACTIVE) -> Any:
        spec = pb.InterceptSpec(
            name=name, workload="web", namespace="demo", target_port=target_port,
            service_port=service_port,
            mechanism=pb.MECHANISM_HTTP if matches else pb.MECHANISM_TCP,
            header_matches=[pb.HeaderMatch(name=k, regex=v) for k, v in (matches or {}).items()])
        created = await self.manager.stub.CreateIntercept(
            pb.CreateInterceptRequest(session=self.session, spec=spec), timeout=5)
        if wait_state is not None:
            state = self.manager.server.state
            await wait_for(lambda: state.intercepts[created.id].state == wait_state,
                           what=f"intercept {name} to be {pb.InterceptState.Name(wait_state)}")
        return self.manager.server.state.intercepts[created.id]

    async def _dials(self) -> None:
        async for dial in self.manager.stub.ReceiveDials(self.session):
            self.tasks.append(asyncio.create_task(self._accept(dial),
                                                  name=f"accept-{dial.dial_id}"))

    async def _accept(self, dial: Any) -> None:
        # as the proto says: dial the local target first, then accept (with `error` if the
        # dial failed, so that the agent can answer 502 at once)
        self.accepted += 1
        call = self.manager.stub.Tunnel()
        accept = pb.TunnelMessage(open=pb.TunnelOpen(session=self.session,
                                                     accept_dial_id=dial.dial_id))
        try:
            reader, writer = await asyncio.open_connection(dial.target_host, dial.target_port)
        except OSError as exc:
            await call.write(accept)
            await call.write(pb.TunnelMessage(error=pb.TunnelError(
                code="refused", message=f"connection to {dial.target_host}:{dial.target_port} "
                                        f"refused ({exc.strerror})")))
            await call.done_writing()
            return
        await call.write(accept)

        async def up() -> None:
            while data := await reader.read(65536):
                await call.write(pb.TunnelMessage(data=data))
            await call.write(pb.TunnelMessage(close_write=pb.CloseWrite()))
            await call.done_writing()

        async def down() -> None:
            async for message in call:
                kind = message.WhichOneof("kind")
                if kind == "data":
                    writer.write(message.data)
                    await writer.drain()
                elif kind == "close_write":
                    writer.write_eof()
                elif kind == "error":
                    writer.transport.abort()
                    return

        try:
            await asyncio.gather(up(), down())
        except (OSError, grpc.aio.AioRpcError):
            pass
        finally:
            writer.close()


class Http:
    """A minimal HTTP/1.1 client on ONE keep-alive connection (h11), to prove per-request
    routing on a single connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> Http:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        hdrs = [("host", "web"), ("content-length", str(len(body)))]
        hdrs += list((headers or {}).items())
        data = self.conn.send(h11.Request(method=method, target=path, headers=hdrs))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        status, response_headers, chunks = 0, {}, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, response_headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before the response ended")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
