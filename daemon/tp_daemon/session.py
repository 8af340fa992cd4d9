"""One connection to a cluster: manager session, tunnel, routing/DNS or SOCKS, keep-alive.

    connect():  kubeconfig -> API reachable -> manager installed (with progress) ->
                port-forward + gRPC channel -> ArriveAsClient -> GetClusterInfo ->
                (root) TUN link, routes, nft, transparent proxy, resolver
                (else) SOCKS5 proxy with remote DNS
                -> keep-alive task
    keep-alive: Remain every `remain_interval`; when it fails (or a tunnel or stream finds
                the channel broken) the port-forward and channel are rebuilt to the
                current manager pod with back-off, and the session re-arrives if it
                expired or the manager restarted; then the intercepts are re-created
                from their specs (`Intercepts.restore`). Meanwhile `tp status` says
                "cluster unreachable" since when; afterwards what was restored.
    disconnect(): keep-alive, Depart, nft/link, proxies, channel, port-forward -- in
                that order; any failure of connect() runs the same undo.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2
from tp_protocol import VERSION
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.aio import spawn, wait_at_most
from tp_protocol.auth import with_credentials
from tp_protocol.settings import ConnectSettings, get_settings

from tp_daemon import direct, paths
from tp_daemon.errors import (
    AlreadyConnected,
    ClusterRefused,
    ClusterUnreachable,
    DaemonError,
    ManagerError,
    NotConnected,
)
from tp_daemon.kube import DirectTarget, Kube, choose_images, manager_skew
from tp_daemon.preload import Preload
from tp_daemon.proxy import Socks5Proxy, TransparentProxy
from tp_daemon.rawdial import RawDialer
from tp_daemon.root import kept as root_kept
from tp_daemon.root.client import unavailable_reason
from tp_daemon.root.kept import KeptLease
from tp_daemon.routing import Routing, can_route, list_routes
from tp_daemon.streams import Stream, ViewStream
from tp_daemon.tunnel import TunnelBroken, TunnelStream

if TYPE_CHECKING:
    from tp_daemon.dns import Resolver
    from tp_daemon.intercepts import Intercepts
    from tp_daemon.podroute import PodRoutes
    from tp_daemon.portforward import PortForwarder

log = logging.getLogger(__name__)

ProgressSink = Callable[[str, str, float, bool], None]
"""(operation, message, fraction, done)."""


@dataclass(frozen=True)
class ConnectParams:
    kubeconfig: str = ""
    context: str = ""
    namespace: str = ""
    manager_namespace: str = ""
    proxy_mode: bool = False
    # images for a traffic-manager install ("" / empty: Settings.connect)
    manager_image: str = ""
    agent_image: str = ""
    image_registry: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    manager_address: str = ""       # auto|direct|port-forward|HOST:PORT ("" = settings)
    manager_service_type: str = ""  # for an install ("" = settings)


def _unmount_stale() -> None:
    """Sshfs mounts a daemon killed with -9 left behind (its record says which)."""
    from tp_daemon.intercepts import volumes

    if unmounted := volumes.cleanup_stale():
        log.warning("unmounted what a killed daemon left: %s", ", ".join(unmounted))


def install_id() -> str:
    """Stable per workstation (and netns), so the manager recognises a reconnect."""
    path = paths.home() / "install-id"
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8").strip()
    value = str(uuid.uuid4())
    path.write_text(value, encoding="utf-8")
    return value


class _Channel:
    """The gRPC channel to the manager: over a port-forward to one manager pod, or direct
    (TLS to its LoadBalancer address, `forwarder` None)."""

    def __init__(self, forwarder: PortForwarder | None, channel: grpc.aio.Channel,
                 token: Callable[[], str], address: str = "") -> None:
        self.forwarder = forwarder
        self.channel = channel
        self.path = direct.PORT_FORWARD if forwarder is not None else direct.DIRECT
        self.address = address
        self.raw: RawDialer | None = None   # direct connect: tunnels as raw TLS streams
        # every call carries the kubeconfig's credentials: the manager reviews them
        self.stub = with_credentials(mgrpc.ManagerStub(channel), token)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.channel.close(grace=None)
        if self.forwarder is not None:
            await self.forwarder.close()


class Session:
    """The daemon's connection; at most one at a time."""

    def __init__(self, settings: ConnectSettings, progress: ProgressSink, *,
                 force_proxy: bool = False) -> None:
        self.settings = settings
        self._progress = progress
        self._force_proxy = force_proxy
        self.params: ConnectParams | None = None
        self.info: dpb.ConnectInfo | None = None
        self.last_error = ""
        self._lock = asyncio.Lock()
        self._kube: Kube | None = None
        self._chan: _Channel | None = None
        self._session: mpb.SessionInfo | None = None
        self._cluster: mpb.ClusterInfo | None = None
        self._routing: Routing | None = None
        self._tproxy: TransparentProxy | None = None
        self._resolver: Resolver | None = None
        self._socks: Socks5Proxy | None = None
        self._root: KeptLease | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._trouble = asyncio.Event()
        self._restore: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.unreachable_since = 0.0
        """Unix time since which the manager has not answered (0: it answers)."""
        self.reconnected = ""
        """The last reconnect and what it restored, for `tp status` ("" = none)."""
        self._new_session = False
        self.intercepts: Intercepts | None = None
        self._choice = direct.Choice(direct.AUTO)
        self._path_note = ""
        self._direct_target: DirectTarget | direct.Unavailable | None = None
        self._pod_routes: PodRoutes | None = None  # port-forward mode's pod dialer
        self._pf_preload: Preload | None = None
        self._intercepts_preload: Preload | None = None
        self._intercepts_started: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.info is not None

    # --- connect / disconnect ------------------------------------------------

    async def connect(self, params: ConnectParams) -> dpb.ConnectInfo:
        async with self._lock:
            if self.info is not None:
                if params != self.params and any(
                        (params.kubeconfig, params.context, params.manager_namespace)):
                    raise AlreadyConnected(
                        f"already connected to context {self.info.cluster_context}; "
                        "run `tp quit` first to connect elsewhere")
                again = dpb.ConnectInfo()
                again.CopyFrom(self.info)
                again.already_connected = True
                return again
            try:
                info = await self._connect(params)
            except BaseException:
                self._preload_intercepts()  # stale mounts go also when connect fails
                await self._teardown()
                raise
            self.params, self.info = params, info
            self._keepalive = spawn(self._keep_alive(), "tp-keepalive", log)
            # after the answer: its import would hold the GIL while connect routes
            self._intercepts_started = spawn(self._start_intercepts(), "tp-start-intercepts",
                                             log)
            return info

    async def _start_intercepts(self) -> None:
        """The intercept bookkeeping of a new connection (`ready_intercepts` waits for it)."""
        await self._preload_intercepts().wait()
        from tp_daemon.intercepts import Intercepts

        self.intercepts = Intercepts(self, get_settings().intercept, self._progress)
        self.intercepts.links.opener = self._open_pod_stream   # direct agent links
        self.intercepts.links.path_allows = self._links_allowed
        self.intercepts.start()

    async def _connect(self, params: ConnectParams) -> dpb.ConnectInfo:
        s = self.settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        if (params.manager_address or s.manager_address).strip() == direct.PORT_FORWARD:
            self._preload_port_forward()  # imports beside the kubeconfig and the pod lookup
        self._say("loading kubeconfig")
        kube = self._kube = await asyncio.to_thread(
            Kube, params.kubeconfig, params.context, params.namespace,
            api_timeout=s.api_timeout)
        kube.bearer_token()  # refuses, in one line, a kubeconfig without a token
        manager_ns = params.manager_namespace or s.manager_namespace
        self._choice = direct.parse(params.manager_address or s.manager_address)
        # the resolver's DNS library (~35 ms of CPU) imports while connect waits on the
        # API server and the manager (proxy mode has no resolver); after the port-forward's
        # import, which is needed first
        resolver_module = Preload(("tp_daemon.dns",), "tp-preload-dns", after=self._pf_preload)
        if not (params.proxy_mode or self._force_proxy):
            resolver_module.start()
        service_type = direct.service_type(params.manager_service_type
                                           or s.manager_service_type)
        # checked before anything happens: a bad reference leaves nothing behind
        images = choose_images(params.manager_image or s.manager_image,
                               params.agent_image or s.agent_image,
                               params.image_registry or s.image_registry,
                               params.image_pull_secrets or tuple(s.image_pull_secrets))
        installed = False
        # One request in the common case (manager running): it also proves the API server
        # reachable and the credentials good; the install path only runs when needed.
        pod, self._direct_target = await asyncio.gather(
            asyncio.to_thread(kube.ready_manager_pod, manager_ns),
            self._first_direct_lookup(manager_ns))
        if pod is None:
            if not await asyncio.to_thread(kube.manager_deployment_exists, manager_ns):
                try:
                    await asyncio.to_thread(kube.install_manager, manager_ns,
                                            self._install_progress, images, service_type)
                except ClusterRefused as e:
                    # a developer with namespace `edit` cannot create the cluster-scoped
                    # RBAC: installing is an admin's job, once per cluster
                    raise ClusterRefused(
                        f"the traffic-manager is not installed in namespace {manager_ns} and "
                        f"context {kube.target.context!r} may not install it ({e}); an admin "
                        "must run `tp connect` once with admin rights to install it") from e
                installed = True
            try:
                pod = await asyncio.to_thread(kube.wait_manager_pod, manager_ns,
                                              s.install_timeout, self._install_progress)
            except ManagerError:
                if installed:  # a first install that cannot run leaves nothing behind
                    await asyncio.to_thread(kube.remove_manager, manager_ns,
                                            get_settings().intercept.daemon_manager_removal_timeout)
                raise
        if installed:
            self._progress("install", "traffic-manager is ready", 1.0, True)
            self._direct_target = await self._direct_lookup(manager_ns)
        forced = params.proxy_mode or self._force_proxy
        # the route listing (an `ip` process) runs on another core while the manager answers
        routes = spawn(list_routes(), "tp-list-routes", log) \
            if can_route() and not forced else None
        self._chan = await self._open_manager(manager_ns, pod, s.connect_timeout)
        stub = self._chan.stub
        session = await stub.ArriveAsClient(mpb.ClientInfo(
            name=f"{getpass.getuser()}@{socket.gethostname()}", namespace=kube.target.namespace,
            install_id=install_id(), version=VERSION), timeout=s.rpc_timeout)
        self._session = session
        cluster = await stub.GetClusterInfo(session, timeout=s.rpc_timeout)
        self._cluster = cluster
        ranges = [*cluster.pod_cidrs, cluster.service_cidr]
        info = dpb.ConnectInfo(
            cluster_context=kube.target.context, cluster_server=kube.target.server,
            namespace=kube.target.namespace, manager_namespace=manager_ns,
            session_id=session.session_id, manager_version=cluster.manager_version,
            daemon_version=VERSION, manager_installed=installed, cluster_info=cluster,
            manager_path=self._chan.path, manager_address=self._chan.address,
            manager_path_note=self._path_note)
        warnings = [manager_skew(cluster.manager_version, manager_ns)]
        if not installed and any((params.manager_image, params.agent_image,
                                  params.image_registry)):
            # asked for images explicitly, but an installed manager keeps its own
            warnings.append(await asyncio.to_thread(kube.manager_images_differ, manager_ns,
                                                    images))
        info.version_warning = "; ".join(w for w in warnings if w)
        if not forced and not can_route() and not unavailable_reason():
            # not root: the root daemon routes to our proxy and asks our resolver
            self._say("asking the root daemon to route " + ", ".join(r for r in ranges if r))
            await resolver_module.wait()
            from tp_daemon.dns import Resolver
            self._tproxy = TransparentProxy(self.dial_proxied)
            proxy_port = await self._tproxy.start()
            self._resolver = Resolver(self.lookup, [], timeout=s.dns_timeout,
                                      cache_ttl=s.dns_cache_ttl, mark=0)
            self._root = await KeptLease.open(
                ranges, proxy_port=proxy_port, dns_port=await self._resolver.start(),
                context=kube.target.context, wait=get_settings().root_daemon.request_timeout,
                on_state=self._root_state)
            info.mode = dpb.MODE_TUN
        elif can_route() and not forced:
            self._say("routing cluster ranges " + ", ".join(r for r in ranges if r))
            await resolver_module.wait()
            from tp_daemon.dns import Resolver, system_nameservers
            self._tproxy = TransparentProxy(self.dial_proxied)
            proxy_port = await self._tproxy.start()
            self._resolver = Resolver(self.lookup, system_nameservers(), timeout=s.dns_timeout,
                                      cache_ttl=s.dns_cache_ttl, mark=s.socket_mark)
            dns_port = await self._resolver.start()
            self._routing = Routing(s.tun_name, s.nft_table, s.socket_mark)
            await self._routing.setup(ranges, proxy_port, self._resolver.upstreams, dns_port,
                                      listed=routes)
            info.mode = dpb.MODE_TUN
        else:
            self._socks = Socks5Proxy(self.dial_proxied, self.resolve_cluster_ip, ranges,
                                      dial_timeout=s.dial_timeout)
            await self._socks.start()
            info.mode = dpb.MODE_PROXY
            info.socks_address = f"127.0.0.1:{self._socks.port}"
        log.info("connected in %.3f s", loop.time() - started)
        self._progress("connect", "connected", 1.0, True)
        return info

    def _root_state(self, problem: str) -> None:
        """The root lease lost ("..."), or asked for again by itself ("")."""
        if problem or self.last_error == root_kept.LOST:
            self.last_error = problem

    async def disconnect(self) -> bool:
        """Undo everything; True when there was a connection."""
        async with self._lock:
            was = self.info is not None
            await self._teardown()
            return was

    async def _teardown(self) -> None:
        if self._intercepts_started is not None:  # not half made while the rest goes
            self._intercepts_started.cancel()
            await asyncio.gather(self._intercepts_started, return_exceptions=True)
            self._intercepts_started = None
        if self._restore is not None:
            self._restore.cancel()
            await asyncio.gather(self._restore, return_exceptions=True)
            self._restore = None
        if self.intercepts is not None:  # its streams first: they use the channel
            await self.intercepts.stop()
            self.intercepts = None
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
            self._keepalive = None
        if self._chan is not None and self._session is not None:
            with contextlib.suppress(Exception):
                await self._chan.stub.Depart(self._session, timeout=2)
        for close in (self._routing.teardown if self._routing else None,
                      self._root.close if self._root else None,
                      self._tproxy.close if self._tproxy else None,
                      self._resolver.close if self._resolver else None,
                      self._socks.close if self._socks else None,
                      self._chan.close if self._chan else None,
                      self._pod_routes.close if self._pod_routes else None):
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("cleanup step failed")
        if self._kube is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._kube.close)
        self._routing = self._tproxy = self._resolver = self._socks = self._root = None
        self._chan, self._kube = None, None
        self._pod_routes = None
        self._session, self._cluster, self.info, self.params = None, None, None, None
        self.unreachable_since, self.reconnected, self.reconnects = 0.0, "", 0

    # --- the channel to the manager -------------------------------------------

    def _preload_port_forward(self) -> None:
        """Import the port-forward (its WebSocket, the pod routes' too: a few ms of CPU) in
        a thread, once, from the moment connect knows it will need it."""
        if self._pf_preload is None:
            self._pf_preload = Preload(("tp_daemon.portforward",),
                                       "tp-preload-portforward").start()

    def _preload_intercepts(self, after: Sequence[Preload | None] = ()) -> Preload:
        """Import the intercept bookkeeping (~20-35 ms of CPU; not needed until connected) in
        a thread, once, after `after`: a connect starts it once it answered
        (`_start_intercepts`), so it never holds the GIL while connect works. Then what a
        killed daemon left mounted is unmounted."""
        if self._intercepts_preload is None:
            self._intercepts_preload = Preload(
                ("tp_daemon.intercepts",), "tp-preload-intercepts", after=after,
                then=_unmount_stale).start()
        return self._intercepts_preload

    async def _first_direct_lookup(self, namespace: str
                                   ) -> DirectTarget | direct.Unavailable | None:
        """The direct lookup of connect: auto without a direct address starts importing
        the port-forward it will use while the manager pod is still being looked up."""
        target = await self._direct_lookup(namespace)
        if self._choice.mode == direct.AUTO and not isinstance(target, DirectTarget):
            self._preload_port_forward()
        return target

    async def _direct_lookup(self, namespace: str) -> DirectTarget | direct.Unavailable | None:
        assert self._kube is not None
        if self._choice.mode == direct.PORT_FORWARD:
            return None
        return await direct.lookup(self._kube, namespace, self._choice)

    async def _open_manager(self, namespace: str, pod: str, deadline: float) -> _Channel:
        """Direct when asked for and possible (`tp_daemon.direct`), else the port-forward;
        `_path_note` says in one line why not direct when that was wanted."""
        assert self._kube is not None
        choice = self._choice
        if choice.mode != direct.PORT_FORWARD:
            # connect looked it up beside the manager pod; a reconnect looks again
            target, self._direct_target = self._direct_target, None
            try:
                got = await direct.open_channel(
                    target or await direct.lookup(self._kube, namespace, choice),
                    self._kube.bearer_token, self.settings.direct_connect_timeout)
                self._path_note = ""
                self._say(f"connected directly to the traffic-manager at {got.address}")
                chan = _Channel(None, got.channel, self._kube.bearer_token, got.address)
                chan.raw = RawDialer(got.target, self.settings) if got.target else None
                return chan
            except direct.Unavailable as e:
                if choice.mode == direct.DIRECT:
                    raise ManagerError(f"direct connect to the traffic-manager failed: {e}; "
                                       "pass --manager-address auto or port-forward") from e
                self._path_note = "" if e.silent else (
                    f"direct connect not used: {e}; using the API server's port-forward")
                if self._path_note:
                    log.warning("%s", self._path_note)
        self._say(f"opening port-forward to {namespace}/{pod}")
        return await self._open_channel(namespace, pod, deadline)

    def _links_allowed(self) -> bool:
        """Agent links ride the API server: not while direct connect keeps it out."""
        return self._chan is None or self._chan.path != direct.DIRECT

    async def _open_pod_stream(self, namespace: str, pod: str, port: int) -> ViewStream:
        """A port-forward to a pod's port (an agent's link port; `intercepts.agentlink`)."""
        from tp_daemon.portforward import PodPort, open_stream

        s = self.settings
        if self._kube is None:
            raise ClusterUnreachable("not connected")
        if self._chan is not None and self._chan.path == direct.DIRECT:
            # direct connect keeps the API server out of the data path: a link through it
            # would stall with it (matched requests take the manager's Relay instead)
            raise ClusterUnreachable("direct connect: no links through the API server")
        endpoint = await asyncio.to_thread(self._kube.endpoint)
        return await open_stream(endpoint, PodPort(namespace, pod, port),
                                 dial_timeout=s.dial_timeout, heartbeat=s.portforward_heartbeat)

    async def _open_channel(self, namespace: str, pod: str, deadline: float) -> _Channel:
        """Port-forward + gRPC channel, retried until the manager answers `Version`."""
        if self._pf_preload is not None:
            await self._pf_preload.wait()  # the loop stays free while its import runs
        from tp_daemon.portforward import PodPort, PortForwarder

        s = self.settings
        assert self._kube is not None
        endpoint = await asyncio.to_thread(self._kube.endpoint)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        delay = 0.1
        while True:
            forwarder = PortForwarder(endpoint, PodPort(namespace, pod, s.manager_port),
                                      dial_timeout=s.dial_timeout,
                                      heartbeat=s.portforward_heartbeat)
            try:
                port = await forwarder.start()
                channel = grpc.aio.insecure_channel(
                    f"127.0.0.1:{port}",
                    options=[("grpc.max_receive_message_length", 16 * 1024 * 1024),
                             ("grpc.enable_retries", 0)])
                chan = _Channel(forwarder, channel, self._kube.bearer_token,
                                f"{namespace}/{pod}")
                try:
                    await chan.stub.Version(empty_pb2.Empty(), timeout=s.rpc_timeout)
                except BaseException:
                    await chan.close()
                    raise
                return chan
            except (ClusterUnreachable, grpc.aio.AioRpcError) as e:
                await forwarder.close()
                if loop.time() + delay > give_up:
                    detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
                    raise ManagerError(
                        f"the traffic-manager {namespace}/{pod} does not answer through the "
                        f"port-forward ({detail}); check its logs") from e
                await asyncio.sleep(delay)
                delay = min(delay * 2, s.reconnect_backoff_max)

    async def _keep_alive(self) -> None:
        s = self.settings
        while True:
            await wait_at_most(self._trouble.wait(), s.remain_interval)
            self._trouble.clear()
            assert self._chan is not None and self._session is not None
            try:
                await self._chan.stub.Remain(mpb.RemainRequest(session=self._session),
                                             timeout=s.rpc_timeout)
                if self.unreachable_since:
                    # the same channel and session answer again (a status probe or a call
                    # had timed out): nothing was reconnected, the last note stays
                    self.unreachable_since = 0.0
                    self.last_error = ""
                continue
            except grpc.aio.AioRpcError as e:
                self.last_error = f"Remain failed: {e.code().name}: {e.details()}"
                log.warning("%s", self.last_error)
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self._arrive(self._chan)
                        self._reachable_again()
                        continue
                self.mark_unreachable()
            await self._reconnect()
            self._reachable_again()

    def channel_trouble(self) -> None:
        """A stream or tunnel found the channel broken: let keep-alive check at once."""
        self._trouble.set()

    def mark_unreachable(self) -> None:
        if not self.unreachable_since:
            self.unreachable_since = time.time()

    def _reachable_again(self) -> None:
        """The manager answers again: say so, and re-create the intercepts when the
        session is new (a new manager knows none of them)."""
        self.unreachable_since = 0.0
        self.last_error = ""
        if self.intercepts is not None:
            self.intercepts.reopen_streams()
        at = time.strftime("%H:%M:%S")
        if not self._new_session or self.intercepts is None:
            self.reconnected = f"reconnected to the traffic-manager at {at}"
            return
        self._new_session = False
        intercepts = self.intercepts
        self.reconnected = (f"reconnected to the traffic-manager at {at}; restoring "
                            "intercepts")

        async def restore() -> None:
            restored, failed = await intercepts.restore()
            note = f"reconnected to the traffic-manager at {at}"
            if restored:
                note += f"; {len(restored)} intercept{'s' if len(restored) != 1 else ''} " \
                        f"restored ({', '.join(restored)})"
            if failed:
                note += "; lost: " + "; ".join(failed)
            self.reconnected = note
            log.info("%s", note)

        if self._restore is not None:
            self._restore.cancel()
        self._restore = spawn(restore(), "tp-restore-intercepts", log)

    async def _arrive(self, chan: _Channel) -> None:
        """A new session on `chan` (the old one expired or the manager restarted)."""
        s = self.settings
        assert self._kube is not None and self.info is not None
        session = await chan.stub.ArriveAsClient(mpb.ClientInfo(
            name=f"{getpass.getuser()}@{socket.gethostname()}",
            namespace=self._kube.target.namespace, install_id=install_id(), version=VERSION),
            timeout=s.rpc_timeout)
        if self.intercepts is not None:
            self.intercepts.begin_restore()  # before the streams can see the new session
        self._new_session = True
        self._session = session
        self.info.session_id = session.session_id
        log.info("arrived as session %s", session.session_id)

    async def _reconnect(self) -> None:
        """Rebuild port-forward and channel to the current manager pod, with back-off."""
        s = self.settings
        assert self._kube is not None and self.info is not None
        namespace = self.info.manager_namespace
        delay = 0.1
        while True:
            try:
                pod = await asyncio.to_thread(self._kube.ready_manager_pod, namespace)
                if pod is None:
                    raise ManagerError(f"no ready traffic-manager pod in {namespace}")
                chan = await self._open_manager(namespace, pod, deadline=s.dial_timeout)
                try:
                    assert self._session is not None
                    await chan.stub.Remain(mpb.RemainRequest(session=self._session),
                                           timeout=s.rpc_timeout)
                except grpc.aio.AioRpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        await chan.close()
                        raise
                    await self._arrive(chan)
                old, self._chan = self._chan, chan
                self.info.manager_path, self.info.manager_address = chan.path, chan.address
                self.info.manager_path_note = self._path_note
                if old is not None:
                    await old.close()
                self.reconnects += 1
                self.last_error = ""
                log.info("reconnected to traffic-manager %s/%s", namespace, pod)
                return
            except (DaemonError, grpc.aio.AioRpcError) as e:
                detail = (f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError)
                          else str(e))
                self.last_error = f"reconnecting: {detail}"
                log.warning("%s", self.last_error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_backoff_max)

    # --- used by intercepts -----------------------------------------------------

    def manager(self) -> tuple[mgrpc.ManagerStub, mpb.SessionInfo]:
        """The current stub and session (both change on reconnects and re-arrivals)."""
        if self._chan is None or self._session is None:
            raise NotConnected("not connected to a cluster: run `tp connect` first")
        return self._chan.stub, self._session

    def kube(self) -> Kube:
        if self._kube is None:
            raise NotConnected("not connected to a cluster: run `tp connect` first")
        return self._kube

    def namespace(self) -> str:
        return self._kube.target.namespace if self._kube is not None else "default"

    async def ready_intercepts(self) -> Intercepts:
        """`require_intercepts`, once a new connection's intercept bookkeeping is started
        (it is imported after connect answered)."""
        started = self._intercepts_started
        if started is not None:
            await asyncio.wait([started])  # a quit may cancel it: then "not connected"
            if not started.cancelled() and started.exception() is not None:
                raise DaemonError(f"the intercept bookkeeping did not start: "
                                  f"{started.exception()}")
        return self.require_intercepts()

    def require_intercepts(self) -> Intercepts:
        if self.intercepts is None:
            raise NotConnected("not connected to a cluster: run `tp connect` first")
        return self.intercepts

    async def uninstall_everything(self, removal_timeout: float) -> dpb.UninstallResult:
        """Every agent restored (others' intercepts ended: `ended`), the traffic-manager
        removed, and this session ended."""
        intercepts = self.require_intercepts()
        result = await intercepts.uninstall(dpb.UninstallRequest(everything=True))
        assert self.info is not None and self.params is not None
        namespace, params = self.info.manager_namespace, self.params
        await self.disconnect()
        # a fresh adapter: disconnect closed the session's one
        kube = await asyncio.to_thread(Kube, params.kubeconfig, params.context,
                                       params.namespace, api_timeout=self.settings.api_timeout)
        try:
            await asyncio.to_thread(kube.remove_manager, namespace, removal_timeout)
        finally:
            await asyncio.to_thread(kube.close)
        result.manager_removed = True
        return result

    # --- used by the proxies and the resolver ----------------------------------

    async def dial(self, ip: str, port: int) -> Stream:
        chan, session = self._chan, self._session
        if chan is None or session is None:
            raise ConnectionError("not connected to the traffic-manager")
        try:
            if chan.raw is not None and (raw := await chan.raw.dial(session, ip, port)):
                return raw
            return await TunnelStream.open(chan.stub, session, ip, port,
                                           dial_timeout=self.settings.dial_timeout)
        except TunnelBroken as e:
            if getattr(e.__cause__, "code", "") in ("unreachable", "timeout"):
                self._trouble.set()  # the channel may be broken: let keep-alive check now
            raise

    async def dial_proxied(self, ip: str, port: int) -> Stream | ViewStream:
        """The proxies' dial: one pod port-forward when the manager names a pod for the
        address (port-forward mode only, `tp_daemon.podroute`), else `dial`'s Tunnel."""
        chan = self._chan
        if chan is not None and chan.forwarder is not None and self.settings.pod_route:
            if self._pod_routes is None:
                from tp_daemon.podroute import PodRoutes
                self._pod_routes = PodRoutes(self.manager, self.settings, self.dial)
            if self.intercepts is not None:
                self._pod_routes.intercepts_are(
                    frozenset((n, i.state) for n, i in self.intercepts.mine.items()))
            if routed := await self._pod_routes.dial(chan.forwarder, ip, port):
                return routed
        return await self.dial(ip, port)

    async def lookup(self, name: str, qtype: int) -> mpb.DNSResponse:
        chan, session = self._chan, self._session
        if chan is None or session is None:
            raise ConnectionError("not connected to the traffic-manager")
        try:
            answer: mpb.DNSResponse = await chan.stub.LookupDNS(
                mpb.DNSRequest(session=session, name=name, qtype=qtype),
                timeout=self.settings.dns_timeout)
            return answer
        except grpc.aio.AioRpcError:
            self._trouble.set()
            raise

    async def resolve_cluster_ip(self, name: str) -> str | None:
        """For SOCKS: the cluster IPv4 of `name`, None when it is not a cluster name."""
        answer = await self.lookup(name, 1)
        if not answer.cluster_name:
            return None
        for rec in answer.records:
            if rec.type == 1 and rec.ip:
                return str(rec.ip)
        raise ConnectionRefusedError(f"{name}: no such name in the cluster")

    # --- status -----------------------------------------------------------------

    async def probe(self) -> None:
        """Ask the manager now (bounded), so that `tp status` never says connected
        while the port-forward or channel is down."""
        chan = self._chan
        if self.info is None or chan is None or self.unreachable_since:
            return
        try:
            await chan.stub.Version(empty_pb2.Empty(), timeout=self.settings.status_probe_timeout)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            if isinstance(e, asyncio.CancelledError):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            if chan is self._chan:  # not replaced meanwhile by a reconnect
                self.mark_unreachable()
                self._trouble.set()

    def status(self) -> dpb.StatusInfo:
        st = dpb.StatusInfo(connected=self.info is not None,
                            root=can_route() or not unavailable_reason(),
                            last_error=self.last_error,
                            unreachable_since=self.unreachable_since,
                            reconnected=self.reconnected)
        if self.info is not None:
            st.connection.CopyFrom(self.info)
        if self._chan is not None and self._chan.raw is not None:
            self._chan.raw.report(st)
        if self._pod_routes is not None:
            st.pod_route_connections = self._pod_routes.connections
            st.tunnel_connections = self._pod_routes.tunnels
        return st

    # --- progress -----------------------------------------------------------------

    def _say(self, message: str) -> None:
        log.info("%s", message)
        self._progress("connect", message, -1, False)

    def _install_progress(self, message: str, fraction: float) -> None:
        log.info("%s", message)
        self._progress("install", message, fraction, False)

