"""Connections to Services and pods as one pod port-forward each (port-forward mode).

A connection to a cluster address goes, when the traffic-manager names a pod for it
(`ResolveDial`: a Service IP:port -> one ready endpoint pod and its port number, a pod
IP -> that pod), as ONE pods/portforward WebSocket to that pod, spliced with the local
socket: no `Tunnel`, no gRPC and no manager in the data path. The kubelet connects to
the pod's localhost:port, so a traffic-agent that took the port over still sees the
connection and intercepts apply.

Everything else uses the `Tunnel` as before (`dial` returns None): addresses the
manager does not route (the `kubernetes` Service, hostNetwork pods...), namespaces
where the user may not create pods/portforward (403, logged once per namespace), a
manager without `ResolveDial`, and a port-forward that cannot be opened (the route is
dropped at once, so the next connection asks again).

Answers are reused for `connect.pod_route_ttl` seconds; concurrent first dials of one
address share one question.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.settings import ConnectSettings

from tp_daemon.errors import ClusterUnreachable
from tp_daemon.portforward import DATA, PodPort, PortForwarder, PortForwardStream
from tp_daemon.streams import Stream, ViewStream

log = logging.getLogger(__name__)

Manager = Callable[[], tuple[mgrpc.ManagerStub, mpb.SessionInfo]]
Dialer = Callable[[], Awaitable[Stream | ViewStream]]


class PodStream(PortForwardStream):
    """A port-forward to a pod used by one proxied connection.

    The kubelet reports a failed connection to the pod's port (a pod going away, nothing
    listening) after the WebSocket opened: when that (or the end of the pod's side) comes
    before any answer, the bytes
    sent so far (at most `replay_limit`) are sent again over `fallback` (a Tunnel) and
    the connection carries on there; `failed` drops the route.
    v4 port-forwards have no half-close: once the local side stopped sending
    (`close_write`) the answer is read until it pauses for `linger` seconds, so a client
    that closed its socket does not leave the WebSocket (and the pod's connection) open
    until the app's keep-alive timeout."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, linger: float,
                 replay_limit: int, failed: Callable[[], None], fallback: Dialer) -> None:
        super().__init__(ws)
        self._linger = linger
        self._write_closed = False
        self._failed = failed
        self._fallback = fallback
        self._limit = replay_limit
        self._sent: bytearray | None = bytearray()   # None: answered, no replay
        self._inner: Stream | ViewStream | None = None
        self._lock = asyncio.Lock()   # orders sends around a switch to the fallback

    async def recv(self) -> bytes | memoryview:
        if self._inner is not None:
            return await self._inner.recv()
        if not self._write_closed:
            data = await super().recv()
        else:
            try:
                async with asyncio.timeout(self._linger):
                    data = await super().recv()
            except TimeoutError:
                return b""
        if data:
            self._sent = None
            return data
        if self.error or self._sent is not None:
            # the pod could not be reached, or it closed without answering (a pod that
            # is shutting down): the route is stale
            self._failed()
        if self._sent is not None:
            return await self._switch()
        return b""

    async def _switch(self) -> bytes | memoryview:
        async with self._lock:
            target = self._inner = await self._fallback()
            sent, self._sent = self._sent, None
            if sent:
                await target.send(bytes(sent))
            if self._write_closed:
                await target.close_write()
        with contextlib.suppress(Exception):
            await self._ws.close()
        return await target.recv()

    async def send(self, data: bytes) -> None:
        async with self._lock:
            if self._inner is not None:
                await self._inner.send(data)
                return
            if self._sent is not None:
                if len(self._sent) + len(data) <= self._limit:
                    self._sent += data
                else:
                    self._sent = None
            # one copy to prepend the channel byte (the masking copy is aiohttp's)
            await self._ws.send_bytes(bytes((DATA,)) + data)

    async def close_write(self) -> None:
        self._write_closed = True
        if self._inner is not None:
            await self._inner.close_write()

    async def close(self) -> None:
        await super().close()
        if self._inner is not None:
            await self._inner.close()


class PodRoutes:
    """The daemon's pod port-forward dialer; `dial` returns None to mean "use a Tunnel"."""

    def __init__(self, manager: Manager, settings: ConnectSettings,
                 tunnel: Callable[[str, int], Awaitable[Stream]]) -> None:
        self._manager = manager
        self._settings = settings
        self._tunnel = tunnel
        # its own pool without aiohttp's limit of 100 connections: every proxied
        # connection holds one WebSocket (the manager's port-forward keeps its own)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._routes: dict[tuple[str, int], tuple[float, PodPort | None]] = {}
        self._asking: dict[tuple[str, int], asyncio.Future[PodPort | None]] = {}
        self._forbidden: set[str] = set()
        self._unsupported = False
        self._epoch: object = None
        self.connections = 0
        """Connections that went as a pod port-forward."""
        self.tunnels = 0
        """Connections that asked and went by a Tunnel."""

    def intercepts_are(self, epoch: object) -> None:
        """The daemon's intercepts and their states: when they changed, every cached route
        is dropped (an agent's rollout moves or reuses pods and rewrites target ports)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._routes.clear()

    async def dial(self, forwarder: PortForwarder, ip: str, port: int
                   ) -> PortForwardStream | None:
        if self._unsupported:
            return None
        target = await self._route(ip, port)
        if target is None or target.namespace in self._forbidden:
            self.tunnels += 1
            return None
        key = (ip, port)
        try:
            async with asyncio.timeout(self._settings.dial_timeout):
                ws = await self._http.ws_connect(
                    PortForwardStream.url(forwarder.endpoint, target),
                    protocols=(PortForwardStream.SUBPROTOCOL,),
                    headers=forwarder.endpoint.headers, ssl=forwarder.endpoint.ssl_context,
                    max_msg_size=0, autoping=True, compress=0,
                    heartbeat=self._settings.portforward_heartbeat)
        except aiohttp.WSServerHandshakeError as e:
            self._routes.pop(key, None)
            if e.status == 403:
                if target.namespace not in self._forbidden:
                    self._forbidden.add(target.namespace)
                    log.warning("pods/portforward is forbidden in namespace %s (%s): its "
                                "connections use the traffic-manager's tunnel",
                                target.namespace, e.message)
            else:
                log.info("port-forward to %s/%s:%d refused (%d %s): using a tunnel",
                         target.namespace, target.pod, target.port, e.status, e.message)
            self.tunnels += 1
            return None
        except (aiohttp.ClientError, OSError, TimeoutError, ClusterUnreachable) as e:
            self._routes.pop(key, None)
            log.info("port-forward to %s/%s:%d failed (%r): using a tunnel",
                     target.namespace, target.pod, target.port, e)
            self.tunnels += 1
            return None
        self.connections += 1
        return PodStream(ws, linger=self._settings.pod_route_linger,
                         replay_limit=self._settings.pod_route_replay_bytes,
                         failed=lambda: self._forget(key),
                         fallback=lambda: self._tunnel(ip, port))

    async def close(self) -> None:
        await self._http.close()

    def _forget(self, key: tuple[str, int]) -> None:
        self._routes.pop(key, None)

    async def _route(self, ip: str, port: int) -> PodPort | None:
        key = (ip, port)
        cached = self._routes.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[PodPort | None] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            target = await self._ask(ip, port)
            future.set_result(target)
            return target
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            del self._asking[key]
            with contextlib.suppress(BaseException):
                future.exception()  # retrieved: no "never retrieved" warning

    async def _ask(self, ip: str, port: int) -> PodPort | None:
        stub, session = self._manager()
        try:
            route = await stub.ResolveDial(
                mpb.ResolveDialRequest(session=session,
                                       dial=mpb.Dial(protocol="tcp", ip=ip, port=port)),
                timeout=self._settings.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._unsupported = True
                log.info("the traffic-manager has no ResolveDial: every connection uses "
                         "a tunnel")
            else:
                log.info("ResolveDial %s:%d: %s: using a tunnel", ip, port, e.details())
            return None  # not cached: ask again next time
        ttl = self._settings.pod_route_ttl
        target = PodPort(route.namespace, route.pod, route.port) if route.pod else None
        if target is None:
            log.debug("%s:%d goes by a tunnel: %s", ip, port, route.none)
        self._routes[(ip, port)] = (time.monotonic() + ttl, target)
        return target
