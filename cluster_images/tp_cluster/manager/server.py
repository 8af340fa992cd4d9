"""The traffic-manager's gRPC service (`tp.manager.v1.Manager`) and its server lifecycle.

`ManagerServer` owns the grpc.aio server, the session reaper and the cluster-info
cache; `Servicer` maps each RPC onto `State`, `dns`, `tunnel` and `workloads` (agent
injection; absent when the manager runs without Kubernetes access, as in unit tests).
State errors become gRPC statuses with the one-line message of the error.

Errors::

    CannotServe              the server cannot start (e.g. the port is taken)
    WorkloadsUnavailable     ListWorkloads without Kubernetes access (UNIMPLEMENTED)
    DialRefused              a client refused an intercepted dial (its local port is down)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as pb
from tp_protocol import manager_pb2_grpc as pb_grpc
from tp_protocol.aio import spawn
from tp_protocol.settings import get_settings
from tp_protocol.tunnel import error_message, first_open

from tp_cluster.errors import ClusterError
from tp_cluster.injector import manager_address
from tp_cluster.kube import Kube
from tp_cluster.manager import tunnel
from tp_cluster.manager.clusterinfo import ClusterFacts
from tp_cluster.manager.dispositions import Dispositions
from tp_cluster.manager.dns import ClusterResolver, DNSLookupError
from tp_cluster.manager.state import State, StateError, TrafficWatch
from tp_cluster.manager.workloads import Workloads
from tp_cluster.manifests import GRPC_PORT
from tp_cluster.manifests import agent_image as agent_image_of_this_version

log = logging.getLogger(__name__)

T = TypeVar("T")
FactsSource = Callable[[], Awaitable[ClusterFacts]]


class CannotServe(ClusterError):
    """The manager cannot run."""


class WorkloadsUnavailable(StateError):
    """Listing workloads needs Kubernetes access."""

    code = "UNIMPLEMENTED"


class DialRefused(ClusterError):
    """The client could not reach its local target (carries the TunnelError for the agent)."""

    def __init__(self, error: Any) -> None:
        super().__init__(error.message)
        self.error = error


def _unary(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn StateError/DNSLookupError into a gRPC status with its message."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Any, context: Any) -> T:
        try:
            return await method(self, request, context)
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
            raise  # unreachable: abort raises
        except DNSLookupError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise

    return wrapper


class CachedFacts:
    """Cluster info discovered at most once per TTL; failures retried on the next call."""

    def __init__(self, discover: FactsSource, ttl: float) -> None:
        self._discover = discover
        self._ttl = ttl
        self._facts: ClusterFacts | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> ClusterFacts:
        async with self._lock:
            if self._facts is None or time.monotonic() - self._at > self._ttl:
                self._facts = await self._discover()
                self._at = time.monotonic()
            return self._facts


class Servicer(pb_grpc.ManagerServicer):
    def __init__(self, state: State, facts: CachedFacts, resolver: ClusterResolver,
                 namespace: str, workloads: Workloads | None = None) -> None:
        self.state = state
        self.facts = facts
        self.resolver = resolver
        self.namespace = namespace
        self.workloads = workloads
        self.settings = get_settings()

    # --- sessions ---------------------------------------------------------------------

    async def Version(self, request: Any, context: Any) -> Any:
        return pb.VersionInfo(name="traffic-manager", version=VERSION)

    def _session_info(self, session_id: str) -> Any:
        return pb.SessionInfo(session_id=session_id, ttl_seconds=self.state.ttl)

    @_unary
    async def ArriveAsClient(self, request: Any, context: Any) -> Any:
        if request.version and request.version != VERSION:
            log.warning("client %s has version %s, manager %s", request.name, request.version,
                        VERSION)
        return self._session_info(self.state.arrive_client(request).id)

    @_unary
    async def ArriveAsAgent(self, request: Any, context: Any) -> Any:
        if not request.name or not request.namespace:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "an agent must name its workload and namespace")
        return self._session_info(self.state.arrive_agent(request).id)

    @_unary
    async def Remain(self, request: Any, context: Any) -> Any:
        self.state.get(request.session.session_id)
        return empty_pb2.Empty()

    async def Depart(self, request: Any, context: Any) -> Any:
        self.state.depart(request.session_id)
        return empty_pb2.Empty()

    # --- connect ----------------------------------------------------------------------

    @_unary
    async def GetClusterInfo(self, request: Any, context: Any) -> Any:
        self.state.get(request.session_id)
        try:
            facts = await self.facts.get()
        except Exception as exc:
            log.exception("cluster info discovery failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"the traffic-manager cannot discover cluster info: {exc}")
            raise
        return pb.ClusterInfo(
            pod_cidrs=facts.pod_cidrs, service_cidr=facts.service_cidr,
            cluster_domain=facts.cluster_domain, dns_ip=facts.dns_ip,
            kube_api_ip=facts.kube_api_ip, manager_namespace=self.namespace,
            manager_version=VERSION)

    @_unary
    async def LookupDNS(self, request: Any, context: Any) -> Any:
        session = self.state.get(request.session.session_id, "client")
        answer = await self.resolver.lookup(request.name, request.qtype or 1, session.namespace)
        return pb.DNSResponse(
            rcode=answer.rcode, cluster_name=answer.cluster_name,
            records=[pb.DNSRecord(name=r.name, type=r.type, ttl=r.ttl, ip=r.ip,
                                  target=r.target, port=r.port, priority=r.priority,
                                  weight=r.weight) for r in answer.records])

    async def Tunnel(self, request_iterator: AsyncIterator[Any], context: Any) -> None:
        write = context.write
        opening = await first_open(request_iterator, self.settings.connect.rpc_timeout)
        if opening is None:
            await write(error_message("bad_request", "a tunnel starts with `open`"))
            return
        try:
            session = self.state.get(opening.session.session_id)
            target = opening.WhichOneof("target")
            if target == "dial":
                await tunnel.dial_out(opening.dial, request_iterator, write,
                                      self.settings.connect.manager_tunnel_dial_timeout,
                                      self.settings.connect.manager_tunnel_chunk)
            elif target == "to_client":
                await self._to_client(session.id, opening.to_client, request_iterator, write)
            elif target == "accept_dial_id":
                future = self.state.accept_dial(session.id, opening.accept_dial_id)
                if opening.HasField("refused"):
                    if not future.done():
                        future.set_exception(DialRefused(opening.refused))
                    return
                endpoint = tunnel.Endpoint(request_iterator, write)
                if not future.done():
                    future.set_result(endpoint)
                await endpoint.done
            else:
                await write(error_message("bad_request", "`open` names no target"))
        except StateError as exc:
            code = "no_session" if exc.code == "NOT_FOUND" else "no_client"
            await write(error_message(code, str(exc)))

    async def _to_client(self, agent_session: str, to_client: Any,
                         requests: AsyncIterator[Any], write: tunnel.Write) -> None:
        dial_id, future = self.state.request_dial(agent_session, to_client)
        timeout = self.settings.intercept.dial_accept_timeout
        try:
            endpoint = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.state.forget_dial(dial_id)
            await write(error_message(
                "timeout", f"the intercepting client did not accept within {timeout:g}s"))
            return
        except DialRefused as exc:
            await write(pb.TunnelMessage(error=exc.error))
            return
        except StateError as exc:  # the client departed while the dial was pending
            await write(error_message("no_client", str(exc)))
            return
        await tunnel.splice(requests, write, endpoint, dial_id)

    # --- intercepts -------------------------------------------------------------------

    async def _no_kube(self, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "this traffic-manager runs without Kubernetes access, so it cannot "
                            "inject or remove traffic-agents")

    @_unary
    async def PrepareIntercept(self, request: Any, context: Any) -> Any:
        if self.workloads is None:
            await self._no_kube(context)
        assert self.workloads is not None
        return await self.workloads.prepare(request)

    @_unary
    async def UninstallAgents(self, request: Any, context: Any) -> Any:
        self.state.get(request.session.session_id, "client")
        if self.workloads is None:
            await self._no_kube(context)
        assert self.workloads is not None
        return await self.workloads.uninstall(request)

    @_unary
    async def CreateIntercept(self, request: Any, context: Any) -> Any:
        session_id = request.session.session_id
        spec = request.spec
        self.state.get(session_id, "client")
        if self.workloads is not None:
            # resolved names, so that conflicts compare the same port however it was named
            spec = await self.workloads.canonical_spec(spec)
        return self.state.create_intercept(session_id, spec)

    def _visible(self, session_id: str, namespace: str) -> list[Any]:
        """Every client's intercepts in `namespace` ("" = all); the volume token only in
        the caller's own."""
        result = []
        for ic in self.state.intercepts.values():
            if namespace and ic.spec.namespace != namespace:
                continue
            if ic.client_session != session_id and ic.volumes_token:
                shown = type(ic).FromString(ic.SerializeToString())
                shown.volumes_token = ""
                result.append(shown)
            else:
                result.append(ic)
        return result

    @_unary
    async def ListIntercepts(self, request: Any, context: Any) -> Any:
        self.state.get(request.session.session_id, "client")
        return pb.InterceptSnapshot(intercepts=self._visible(request.session.session_id,
                                                             request.namespace))

    async def _workload_list(self, session_id: str, namespace: str) -> Any:
        session = self.state.get(session_id, "client")
        if self.workloads is None:
            raise WorkloadsUnavailable("this traffic-manager runs without Kubernetes access, "
                                       "so it cannot list workloads")
        namespace = namespace or session.namespace
        listed = await asyncio.to_thread(self.workloads.list_workloads, namespace)
        held: dict[tuple[str, str], list[Any]] = {}
        for ic in self._visible(session_id, namespace):
            if ic.state != pb.INTERCEPT_STATE_REMOVED:
                key = (ic.spec.workload_kind or "Deployment", ic.spec.workload)
                held.setdefault(key, []).append(ic)
        versions: dict[str, set[str]] = {}
        for s in self.state.sessions.values():
            if s.agent is not None and s.agent.namespace == namespace:
                versions.setdefault(s.agent.name, set()).add(s.agent.version)
        for info in listed:
            if held.get((info.kind, info.name)):
                info.state = pb.WORKLOAD_STATE_INTERCEPTED
                info.intercepts.extend(held[(info.kind, info.name)])
            info.agent_versions.extend(sorted(versions.get(info.name, ())))
        return pb.WorkloadList(workloads=listed)

    @_unary
    async def ListWorkloads(self, request: Any, context: Any) -> Any:
        return await self._workload_list(request.session.session_id, request.namespace)

    async def WatchWorkloads(self, request: Any, context: Any) -> AsyncIterator[Any]:
        session_id = request.session.session_id
        poll = self.settings.intercept.manager_rollout_poll
        last = b""
        while session_id in self.state.sessions:
            version = self.state.version
            try:
                current = await self._workload_list(session_id, request.namespace)
            except StateError as exc:
                await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
                return
            encoded = current.SerializeToString(deterministic=True)
            if encoded != last:
                last = encoded
                yield current
            # intercept changes wake at once; cluster changes are seen at the next poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.wait_change(version), poll)

    @_unary
    async def RemoveIntercept(self, request: Any, context: Any) -> Any:
        self.state.remove_intercept(request.session.session_id, request.name)
        return empty_pb2.Empty()

    async def _snapshots(self, session_id: str, kind: str,
                         snapshot: Callable[[str], list[Any]],
                         context: Any) -> AsyncIterator[Any]:
        try:
            self.state.get(session_id, kind)
        except StateError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        last: list[bytes] | None = None
        version = -1
        while session_id in self.state.sessions:
            current = snapshot(session_id)
            encoded = [ic.SerializeToString(deterministic=True) for ic in current]
            if encoded != last:
                last = encoded
                yield pb.InterceptSnapshot(intercepts=current)
            version = await self.state.wait_change(version if version >= 0
                                                   else self.state.version)

    # grpc.aio wants the handler itself to be an async generator function
    async def WatchIntercepts(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for snapshot in self._snapshots(request.session_id, "client",
                                              self.state.client_snapshot, context):
            yield snapshot

    async def WatchInterceptsForAgent(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for snapshot in self._snapshots(request.session_id, "agent",
                                              self.state.agent_snapshot, context):
            yield snapshot

    async def ReceiveDials(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            session = self.state.get(request.session_id, "client")
        except StateError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            return
        session.dial_receivers += 1
        poll = self.settings.connect.manager_reap_interval
        try:
            while session.id in self.state.sessions:
                with contextlib.suppress(TimeoutError):
                    yield await asyncio.wait_for(session.dials.get(), poll)
        finally:
            session.dial_receivers -= 1

    @_unary
    async def ReviewIntercept(self, request: Any, context: Any) -> Any:
        self.state.review(request.session.session_id, request)
        return empty_pb2.Empty()

    # --- traffic ----------------------------------------------------------------------

    async def ReportTraffic(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        session_id = ""
        async for report in request_iterator:
            if report.session.session_id:
                session_id = report.session.session_id
            try:
                self.state.get(session_id, "agent")
            except StateError as exc:
                await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            if report.HasField("record"):
                self.state.publish_traffic(report.record)
        return empty_pb2.Empty()

    async def WatchTraffic(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            session = self.state.get(request.session.session_id, "client")
        except StateError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            return
        watch = TrafficWatch(
            intercept_names=frozenset(request.intercept_names),
            include_unmatched=request.include_unmatched,
            queue=collections.deque(maxlen=self.settings.intercept.traffic_watch_queue))
        session.traffic.append(watch)
        try:
            while session.id in self.state.sessions:
                while watch.queue:
                    yield watch.queue.popleft()
                watch.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.wakeup.wait(),
                                           self.settings.connect.manager_reap_interval)
        finally:
            with contextlib.suppress(ValueError):
                session.traffic.remove(watch)
            if watch.dropped:
                log.warning("client %s lagged: %d traffic rows dropped", session.id,
                            watch.dropped)


class ManagerServer:
    """gRPC server + session reaper; `start`, then `stop` (graceful, in order)."""

    def __init__(self, facts: FactsSource, resolver: ClusterResolver, namespace: str,
                 listen: str = "[::]:8081", *, kube: Kube | None = None,
                 agent_image: str | None = None,
                 agent_manager_address: str | None = None) -> None:
        """`kube` enables agent injection; agents get `agent_image` (default: ours) and
        dial `agent_manager_address` (default: this manager's Service)."""
        settings = get_settings()
        self.settings = settings
        self.state = State(ttl=settings.connect.session_ttl, gated=kube is not None)
        self.facts = CachedFacts(facts, settings.connect.manager_cluster_info_ttl)
        self.workloads = None if kube is None else Workloads(
            kube, self.state, agent_image or agent_image_of_this_version(),
            agent_manager_address or manager_address(namespace, GRPC_PORT))
        self.servicer = Servicer(self.state, self.facts, resolver, namespace, self.workloads)
        self.listen = listen
        self.port = 0
        limit = settings.connect.manager_max_message
        self.server = grpc.aio.server(options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ])
        pb_grpc.add_ManagerServicer_to_server(self.servicer, self.server)
        self._reaper: asyncio.Task[None] | None = None
        self.dispositions = None if self.workloads is None else Dispositions(
            self.state, self.workloads, settings.intercept.manager_rollout_poll)
        self._disposer: asyncio.Task[None] | None = None

    async def start(self) -> int:
        try:
            self.port = self.server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise CannotServe(f"cannot listen on {self.listen}: {exc}; is another "
                               "traffic-manager running?") from exc
        await self.server.start()
        self._reaper = spawn(self._reap(), "session-reaper", log)
        if self.dispositions is not None:
            self._disposer = spawn(self.dispositions.run(), "intercept-dispositions", log)
        log.info("traffic-manager %s serving on port %d", VERSION, self.port)
        return self.port

    async def _reap(self) -> None:
        interval = self.settings.connect.manager_reap_interval
        while True:
            await asyncio.sleep(interval)
            try:
                self.state.expire()
            except Exception:
                log.exception("session reaper sweep failed; trying again")

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, give in-flight calls `grace` seconds, then stop the reaper."""
        grace = self.settings.connect.manager_stop_grace if grace is None else grace
        await self.server.stop(grace)
        for task in (self._reaper, self._disposer):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        log.info("traffic-manager stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()
