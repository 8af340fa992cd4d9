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
from collections.abc import Callable

import aiohttp
import grpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.settings import ConnectSettings

from tp_daemon.errors import ClusterUnreachable
from tp_daemon.portforward import DATA, PodPort, PortForwarder, PortForwardStream

log = logging.getLogger(__name__)

Manager = Callable[[], tuple[mgrpc.ManagerStub, mpb.SessionInfo]]


class PodStream(PortForwardStream):
    """A port-forward to a pod used by one proxied connection.

    v4 port-forwards have no half-close: once the local side stopped sending
    (`close_write`) the answer is read until it pauses for `linger` seconds, so a
    client that closed its socket does not leave the WebSocket (and the pod's
    connection) open until the app's keep-alive timeout. `failed` is called when the
    kubelet reports an error (e.g. nothing listens on the port)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, linger: float,
                 failed: Callable[[], None]) -> None:
        super().__init__(ws)
        self._linger = linger
        self._write_closed = False
        self._failed = failed

    async def recv(self) -> bytes | memoryview:
        if not self._write_closed:
            data = await super().recv()
        else:
            try:
                async with asyncio.timeout(self._linger):
                    data = await super().recv()
            except TimeoutError:
                return b""
        if not data and self.error:
            self._failed()
        return data

    async def send(self, data: bytes) -> None:
        # one copy to prepend the channel byte (the masking copy is aiohttp's)
        await self._ws.send_bytes(bytes((DATA,)) + data)

    async def close_write(self) -> None:
        self._write_closed = True


class PodRoutes:
    """The daemon's pod port-forward dialer; `dial` returns None to mean "use a Tunnel"."""

    def __init__(self, manager: Manager, settings: ConnectSettings) -> None:
        self._manager = manager
        self._settings = settings
        self._routes: dict[tuple[str, int], tuple[float, PodPort | None]] = {}
        self._asking: dict[tuple[str, int], asyncio.Future[PodPort | None]] = {}
        self._forbidden: set[str] = set()
        self._unsupported = False
        self.connections = 0
        """Connections that went as a pod port-forward."""
        self.tunnels = 0
        """Connections that asked and went by a Tunnel."""

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
                ws = await forwarder.http.ws_connect(
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
            log.info("port-forward to %s/%s:%d failed (%s): using a tunnel",
                     target.namespace, target.pod, target.port, e)
            self.tunnels += 1
            return None
        self.connections += 1
        return PodStream(ws, self._settings.pod_route_linger, lambda: self._forget(key))

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
