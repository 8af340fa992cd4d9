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
import weakref
from collections.abc import Awaitable, Callable

import grpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.settings import ConnectSettings

from tp_daemon.errors import ClusterUnreachable
from tp_daemon.podws import HandshakeError, PodSocket
from tp_daemon.portforward import PodPort, PortForwarder
from tp_daemon.streams import Stream, ViewStream

log = logging.getLogger(__name__)

Manager = Callable[[], tuple[mgrpc.ManagerStub, mpb.SessionInfo]]
Dialer = Callable[[], Awaitable[Stream | ViewStream]]


class PodStream:
    """A port-forward to a pod used by one proxied connection (a lean WebSocket of its
    own, `tp_daemon.podws`: this is the whole data path, so its per-byte cost counts).

    The kubelet reports a failed connection to the pod's port (a pod going away, nothing
    listening) after the WebSocket opened: when that (or the end of the pod's side) comes
    before any answer, the bytes
    sent so far (at most `replay_limit`) are sent again over `fallback` (a Tunnel) and
    the connection carries on there; `failed` drops the route.
    v4 port-forwards have no half-close: once the local side stopped sending
    (`close_write`) the answer is read until it pauses for `linger` seconds, so a client
    that closed its socket does not leave the WebSocket (and the pod's connection) open
    until the app's keep-alive timeout."""

    def __init__(self, ws: PodSocket, *, linger: float,
                 replay_limit: int, failed: Callable[[], None], fallback: Dialer) -> None:
        self._ws = ws
        self._linger = linger
        self._write_closed = False
        self._failed = failed
        self._fallback = fallback
        self._limit = replay_limit
        self._sent: bytearray | None = bytearray()   # None: answered, no replay
        self._inner: Stream | ViewStream | None = None
        self._lock = asyncio.Lock()   # orders sends around a switch to the fallback

    @property
    def error(self) -> str:
        return self._ws.error

    async def recv(self) -> bytes | memoryview:
        if self._inner is not None:
            return await self._inner.recv()
        if not self._write_closed:
            data = await self._ws.recv()
        else:
            try:
                async with asyncio.timeout(self._linger):
                    data = await self._ws.recv()
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

    async def pump_to(self, writer: asyncio.StreamWriter) -> None:
        """The downstream half of `splice`: the first answer as `recv` has it (a switch to
        the fallback comes before it), then the pod's data goes to `writer` straight from
        the WebSocket's protocol callbacks (`PodSocket.pump_to`)."""
        data = await self.recv()
        while data:
            writer.write(data)
            await writer.drain()
            if self._inner is None and self._sent is None:
                await self._ws.pump_to(writer, self._lingering)
                if self.error:
                    self._failed()
                return
            data = await self.recv()

    def _lingering(self) -> float | None:
        return self._linger if self._write_closed else None

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
        if self._sent is None and self._inner is None:  # answered: no switch can come
            await self._ws.send(data)
            return
        async with self._lock:
            if self._inner is not None:
                await self._inner.send(data)
                return
            if self._sent is not None:
                if len(self._sent) + len(data) <= self._limit:
                    self._sent += data
                else:
                    self._sent = None
            await self._ws.send(data)

    async def close_write(self) -> None:
        self._write_closed = True
        self._ws.nudge()
        if self._inner is not None:
            await self._inner.close_write()

    async def close(self) -> None:
        await self._ws.close()
        if self._inner is not None:
            await self._inner.close()


class PodRoutes:
    """The daemon's pod port-forward dialer; `dial` returns None to mean "use a Tunnel"."""

    def __init__(self, manager: Manager, settings: ConnectSettings,
                 tunnel: Callable[[str, int], Awaitable[Stream]]) -> None:
        self._manager = manager
        self._settings = settings
        self._tunnel = tunnel
        self._open: weakref.WeakSet[PodSocket] = weakref.WeakSet()  # ended by close()
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
                   ) -> PodStream | None:
        if self._unsupported:
            return None
        target = await self._route(ip, port)
        if target is None or target.namespace in self._forbidden:
            self.tunnels += 1
            return None
        key = (ip, port)
        try:
            async with asyncio.timeout(self._settings.dial_timeout):
                ws = await PodSocket.open(forwarder.endpoint, target,
                                          heartbeat=self._settings.portforward_heartbeat)
        except HandshakeError as e:
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
        except (OSError, TimeoutError, ClusterUnreachable) as e:
            self._routes.pop(key, None)
            log.info("port-forward to %s/%s:%d failed (%r): using a tunnel",
                     target.namespace, target.pod, target.port, e)
            self.tunnels += 1
            return None
        self.connections += 1
        self._open.add(ws)
        return PodStream(ws, linger=self._settings.pod_route_linger,
                         replay_limit=self._settings.pod_route_replay_bytes,
                         failed=lambda: self._forget(key),
                         fallback=lambda: self._tunnel(ip, port))

    async def close(self) -> None:
        """End every pod port-forward still open (the daemon disconnects)."""
        for ws in list(self._open):
            ws.abort()

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
