"""The traffic-manager's gRPC service (`tp.manager.v1.Manager`) and its server lifecycle.

`ManagerServer` owns the grpc.aio server, the session reaper and the cluster-info
cache; `Servicer` maps each RPC onto `State`, `dns`, `tunnel` and `workloads` (agent
injection; absent when the manager runs without Kubernetes access, as in unit tests).
State errors become gRPC statuses with the one-line message of the error.

Security (`auth`): `AuthInterceptor` refuses every RPC without credentials the API
server accepts. Sessions belong to the identity that arrived; every call naming a
session checks it (`_session`: PERMISSION_DENIED for another identity). Injecting or
removing agents and creating/removing intercepts need update+patch on the workload
(SubjectAccessReview). Listings show other developers' intercepts without their session
id, environment, mounts or volume token (`_visible`).

Errors::

    CannotServe              the server cannot start (e.g. the port is taken)
    WorkloadsUnavailable     ListWorkloads without Kubernetes access (UNIMPLEMENTED)
    DialRefused              a client refused an intercepted dial (its local port is down)
    OthersIntercepting       UninstallAgents without force would end others' intercepts
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
from tp_protocol.aio import spawn, wait_at_most
from tp_protocol.relay import take_rows
from tp_protocol.settings import get_settings
from tp_protocol.tunnel import error_message, first_open

from tp_cluster.errors import ClusterError
from tp_cluster.injector import manager_address
from tp_cluster.kube import Kube
from tp_cluster.manager import logs, tunnel
from tp_cluster.manager.auth import AuthInterceptor, Caller, Forbidden, Gate, OpenGate
from tp_cluster.manager.clusterinfo import ClusterFacts
from tp_cluster.manager.dispositions import Dispositions
from tp_cluster.manager.dns import ClusterResolver, DNSLookupError
from tp_cluster.manager.relay import RelayHub
from tp_cluster.manager.replace import Replacements
from tp_cluster.manager.routes import DialRoutes
from tp_cluster.manager.state import (
    InterceptGone,
    InterceptInvalid,
    Session,
    State,
    StateError,
    TrafficWatch,
    check_spec,
)
from tp_cluster.manager.tls import CannotServeDirect, Identity, add_direct_port
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


class OthersIntercepting(StateError):
    """Uninstalling would end other developers' intercepts (and --force was not given)."""

    code = "FAILED_PRECONDITION"


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
                 namespace: str, workloads: Workloads | None = None, *,
                 gate: Gate | None = None) -> None:
        self.state = state
        self.gate = gate or OpenGate()
        self.facts = facts
        self.resolver = resolver
        self.namespace = namespace
        self.workloads = workloads
        self.settings = get_settings()
        self.replacements: Replacements | None = None   # `tp replace` (with Kubernetes)
        self.routes: DialRoutes | None = None   # ResolveDial (with Kubernetes)
        self.relay = RelayHub(state, self.settings.intercept.relay_buffer_bytes)
        self.raw_dial_port = 0   # raw dials served (`manager.rawdial`): told to clients

    # --- who calls -------------------------------------------------------------------

    async def _caller(self, context: Any) -> Caller:
        """The authenticated caller (the interceptor reviewed the token; this is cached)."""
        return await self.gate.identify(context.invocation_metadata())

    async def _session(self, context: Any, session_id: str, kind: str | None = None
                       ) -> Session:
        """The session, if the caller is the identity that arrived as it."""
        caller = await self._caller(context)
        return self.state.get(session_id, kind, owner=caller.key)

    async def _may_change(self, context: Any, kind: str, namespace: str, name: str,
                          doing: str) -> None:
        caller = await self._caller(context)
        await self.gate.require_workload_rights(caller, kind, namespace, name, doing)

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
        caller = await self._caller(context)
        session = self.state.arrive_client(request, owner=caller.key, username=caller.username)
        info = self._session_info(session.id)
        if self.raw_dial_port:
            info.dial_secret, info.raw_dial_port = session.dial_secret, self.raw_dial_port
        return info

    @_unary
    async def ArriveAsAgent(self, request: Any, context: Any) -> Any:
        if not request.name or not request.namespace:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "an agent must name its workload and namespace")
        caller = await self._caller(context)
        await self._agent_may_arrive(caller, request)
        session = self.state.arrive_agent(request, owner=caller.key, username=caller.username)
        return self._session_info(session.id)

    async def _agent_may_arrive(self, caller: Caller, info: Any) -> None:
        """An agent acts only for its own pod's workload: a pod-bound service-account token
        of that pod (which the workload owns), an unbound one of that namespace, or a
        caller who may change the workload anyway."""
        ns, name, pod = info.namespace, info.name, info.pod_name
        sa_ns = caller.service_account_namespace
        if sa_ns == ns and caller.pod_name:
            if caller.pod_name != pod:
                raise Forbidden(f"this token belongs to pod {caller.pod_name}, not {pod}: an "
                                "agent arrives with its own pod's service-account token")
            uid, _, owner = await self.gate.pod_workload(ns, pod)
            if not uid or (caller.pod_uid and uid != caller.pod_uid) or owner != name:
                raise Forbidden(f"pod {ns}/{pod} is not a pod of {name}: an agent acts only "
                                "for its own workload")
            return
        if sa_ns == ns:
            return
        if await self.gate.allowed(caller, "update", info.kind, ns, name):
            return
        raise Forbidden(f"{caller.username} may not act as the traffic-agent of {name}.{ns}: "
                        "an agent arrives with its own pod's service-account token")

    @_unary
    async def Remain(self, request: Any, context: Any) -> Any:
        await self._session(context, request.session.session_id)
        return empty_pb2.Empty()

    @_unary
    async def Depart(self, request: Any, context: Any) -> Any:
        caller = await self._caller(context)
        session = self.state.sessions.get(request.session_id)
        if session is not None and session.owner != caller.key:
            raise Forbidden(f"session {request.session_id!r} belongs to another identity: "
                            "you may end only your own")
        self.state.depart(request.session_id)
        return empty_pb2.Empty()

    # --- connect ----------------------------------------------------------------------

    @_unary
    async def GetClusterInfo(self, request: Any, context: Any) -> Any:
        await self._session(context, request.session_id)
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
        session = await self._session(context, request.session.session_id, "client")
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
            session = await self._session(context, opening.session.session_id)
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
            code = "gone" if isinstance(exc, InterceptGone) else {
                "NOT_FOUND": "no_session", "PERMISSION_DENIED": "forbidden"}.get(
                exc.code, "no_client")
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
        if not request.namespace:
            raise InterceptInvalid("an intercept needs a namespace: give -n NAMESPACE")
        await self._may_change(context, request.workload_kind, request.namespace,
                               request.workload, "installing its traffic-agent")
        prepared = await self.workloads.prepare(request)
        if request.replace_app and self.replacements is not None:
            self.replacements.hold(request.namespace, request.workload)
        return prepared

    @_unary
    async def UninstallAgents(self, request: Any, context: Any) -> Any:
        session = await self._session(context, request.session.session_id, "client")
        if self.workloads is None:
            await self._no_kube(context)
        assert self.workloads is not None
        ended: list[Any] = []  # others' intercepts a forced uninstall ends, for the answer

        async def allow(targets: list[tuple[str, str]]) -> None:
            for namespace, name in targets:
                await self._may_change(context, "Deployment", namespace, name,
                                       "removing its traffic-agent")
            theirs = [ic for ic in self.state.intercepts.values()
                      if (ic.spec.namespace, ic.spec.workload) in targets
                      and ic.client_session != session.id]
            others = sorted({f"{ic.spec.name} ({ic.spec.owner or ic.spec.client}) on "
                             f"{ic.spec.workload}.{ic.spec.namespace}" for ic in theirs})
            ended.extend(pb.InterceptSpec(name=ic.spec.name, owner=ic.spec.owner,
                                          client=ic.spec.client, workload=ic.spec.workload,
                                          namespace=ic.spec.namespace,
                                          workload_kind=ic.spec.workload_kind)
                         for ic in sorted(theirs, key=lambda ic: (ic.spec.namespace,
                                                                  ic.spec.workload,
                                                                  ic.spec.name)))
            if others and not request.force:
                raise OthersIntercepting(
                    "other developers intercept through these agents: "
                    f"{', '.join(others)}; add --force to remove them anyway (their "
                    "intercepts end)")
            if others:
                log.warning("%s removes agents with other developers' intercepts (--force): "
                            "%s", session.username or session.id, ", ".join(others))

        try:
            result = await self.workloads.uninstall(request, allow)
            result.ended.extend(ended)
            return result
        except OthersIntercepting as exc:
            return pb.UninstallAgentsResult(error=str(exc))

    @_unary
    async def CreateIntercept(self, request: Any, context: Any) -> Any:
        session_id = request.session.session_id
        spec = request.spec
        await self._session(context, session_id, "client")
        check_spec(spec)  # a bad spec is refused before the cluster is even read
        if spec.namespace and spec.workload:
            await self._may_change(context, spec.workload_kind, spec.namespace,
                                   spec.workload, "intercepting it")
        if self.workloads is not None:
            # resolved names, so that conflicts compare the same port however it was named
            spec = await self.workloads.canonical_spec(spec)
        refusal = self.replacements.refusal(session_id, spec) if self.replacements else ""
        if refusal:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, refusal)
        elif spec.replace_app and self.replacements is None:
            await self._no_kube(context)
        return self.state.create_intercept(session_id, spec)

    def _visible(self, session_id: str, namespace: str) -> list[Any]:
        """Every client's intercepts in `namespace` ("" = all); only the caller's own with
        their secrets: others' without session id, environment, mounts or volume token."""
        result = []
        for ic in self.state.intercepts.values():
            if namespace and ic.spec.namespace != namespace:
                continue
            if ic.client_session == session_id:
                result.append(ic)
                continue
            shown = pb.InterceptInfo(spec=ic.spec, state=ic.state, message=ic.message,
                                     agent_pod=ic.agent_pod, pod_ip=ic.pod_ip,
                                     created=ic.created, volumes_port=ic.volumes_port)
            result.append(shown)
        return result

    @_unary
    async def ListIntercepts(self, request: Any, context: Any) -> Any:
        await self._session(context, request.session.session_id, "client")
        return pb.InterceptSnapshot(intercepts=self._visible(request.session.session_id,
                                                             request.namespace))

    async def _workload_list(self, session_id: str, namespace: str, context: Any) -> Any:
        session = await self._session(context, session_id, "client")
        if self.workloads is None:
            raise WorkloadsUnavailable("this traffic-manager runs without Kubernetes access, "
                                       "so it cannot list workloads")
        namespace = namespace or session.namespace
        caller = await self._caller(context)
        if not await self.gate.allowed(caller, "list", "Deployment", namespace, ""):
            raise Forbidden(f"{caller.username} may not list deployments in namespace "
                            f"{namespace}: pick a namespace you can see (-n)")
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
        return await self._workload_list(request.session.session_id, request.namespace,
                                         context)

    async def WatchWorkloads(self, request: Any, context: Any) -> AsyncIterator[Any]:
        session_id = request.session.session_id
        poll = self.settings.intercept.manager_rollout_poll
        last = b""
        while session_id in self.state.sessions:
            version = self.state.version
            try:
                current = await self._workload_list(session_id, request.namespace, context)
            except StateError as exc:
                await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
                return
            encoded = current.SerializeToString(deterministic=True)
            if encoded != last:
                last = encoded
                yield current
            # intercept changes wake at once; cluster changes are seen at the next poll
            await wait_at_most(self.state.wait_change(version), poll)

    @_unary
    async def RemoveIntercept(self, request: Any, context: Any) -> Any:
        session_id = request.session.session_id
        await self._session(context, session_id, "client")
        ic = self.state.intercepts.get(f"{session_id}:{request.name}")
        if ic is not None:
            await self._may_change(context, ic.spec.workload_kind, ic.spec.namespace,
                                   ic.spec.workload, "removing an intercept of it")
        self.state.remove_intercept(session_id, request.name)
        return empty_pb2.Empty()

    async def _snapshots(self, session_id: str, kind: str,
                         snapshot: Callable[[str], list[Any]],
                         context: Any) -> AsyncIterator[Any]:
        try:
            await self._session(context, session_id, kind)
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
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
            session = await self._session(context, request.session_id, "client")
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
            return
        session.dial_receivers += 1
        poll = self.settings.connect.manager_reap_interval
        try:
            while session.id in self.state.sessions:
                try:
                    async with asyncio.timeout(poll):  # not wait_for: see aio.wait_at_most
                        dial = await session.dials.get()
                except TimeoutError:
                    continue
                yield dial
        finally:
            session.dial_receivers -= 1

    @_unary
    async def ReviewIntercept(self, request: Any, context: Any) -> Any:
        await self._session(context, request.session.session_id, "agent")
        self.state.review(request.session.session_id, request)
        return empty_pb2.Empty()

    # --- traffic ----------------------------------------------------------------------

    async def ReportTraffic(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        session_id = ""
        async for report in request_iterator:
            if report.session.session_id:
                session_id = report.session.session_id
            try:
                agent = await self._session(context, session_id, "agent")
            except StateError as exc:
                await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
                raise
            if report.HasField("record"):
                self.state.publish_traffic(report.record, agent)
            if report.mirror_counters:
                self.state.mirror_counters(agent, report.mirror_counters)
            for record in report.records:
                self.state.publish_traffic(record, agent)
        return empty_pb2.Empty()

    async def WatchTraffic(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for rows in self._traffic_rows(request, context):
            for row in rows:
                yield row

    async def _traffic_rows(self, request: Any, context: Any) -> AsyncIterator[list[Any]]:
        try:
            session = await self._session(context, request.session.session_id, "client")
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
            return
        watch = TrafficWatch(
            intercept_names=frozenset(request.intercept_names),
            include_unmatched=request.include_unmatched,
            queue=collections.deque(maxlen=self.settings.intercept.traffic_watch_queue))
        session.traffic.append(watch)
        try:
            while session.id in self.state.sessions:
                while watch.queue:
                    yield take_rows(watch.queue, self.settings.intercept.traffic_batch_bytes)
                watch.wakeup.clear()
                await wait_at_most(watch.wakeup.wait(), self.settings.connect.manager_reap_interval)
        finally:
            with contextlib.suppress(ValueError):
                session.traffic.remove(watch)
            if watch.dropped:
                log.warning("client %s lagged: %d traffic rows dropped", session.id,
                            watch.dropped)


    # --- diagnostics --------------------------------------------------------------

    async def GatherLogs(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            await self._session(context, request.session.session_id, "client")
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
            return
        caller = await self._caller(context)

        async def readable(namespace: str, workload: str) -> bool:
            return await self.gate.allowed(caller, "get", "", namespace, workload)
        connect = self.settings.connect
        max_bytes = int(request.max_bytes) or connect.gather_logs_max_bytes
        # one message each, well below gRPC's default 4 MiB receive limit on the daemon's side
        max_bytes = min(max_bytes, connect.manager_max_message // 4)
        kube = self.workloads.kube if self.workloads is not None else None
        async for entry in logs.gather(self.state, kube, self.namespace, max_bytes,
                                       connect.gather_logs_tail_lines, readable=readable):
            yield entry

    # --- speed: multiplexed intercepted requests (tp_cluster.manager.relay) ----------

    async def Relay(self, request_iterator: AsyncIterator[Any], context: Any) -> None:
        async def session_of(session_id: str) -> Any:
            return await self._session(context, session_id)
        try:
            await self.relay.serve(request_iterator, context.write, session_of)
        except StateError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))

    async def WatchTrafficBatches(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for rows in self._traffic_rows(request, context):
            yield pb.TrafficBatch(records=rows)

    # --- pftunnel ---------------------------------------------------------------------

    @_unary
    async def ResolveDial(self, request: Any, context: Any) -> Any:
        await self._session(context, request.session.session_id, "client")
        if self.routes is None:
            return pb.DialRoute(none="this traffic-manager runs without Kubernetes access")
        return await self.routes.resolve(request.dial.ip, request.dial.port)


class ManagerServer:
    """gRPC server + session reaper; `start`, then `stop` (graceful, in order)."""

    def __init__(self, facts: FactsSource, resolver: ClusterResolver, namespace: str,
                 listen: str = "[::]:8081", *, kube: Kube | None = None,
                 agent_image: str | None = None,
                 agent_manager_address: str | None = None,
                 direct: tuple[str, Identity] | None = None) -> None:
        """`kube` enables agent injection and authentication (TokenReview and
        SubjectAccessReview through it); agents get `agent_image` (default: ours) and
        dial `agent_manager_address` (default: this manager's Service). `direct` is the
        TLS listener of direct connect (address, certificate): same service, same auth."""
        settings = get_settings()
        self.settings = settings
        self.state = State(ttl=settings.connect.session_ttl, gated=kube is not None)
        self.facts = CachedFacts(facts, settings.connect.manager_cluster_info_ttl)
        self.workloads = None if kube is None else Workloads(
            kube, self.state, agent_image or agent_image_of_this_version(),
            agent_manager_address or manager_address(namespace, GRPC_PORT),
            manager_namespace=namespace)
        self.gate = OpenGate() if kube is None else Gate(kube)
        self.servicer = Servicer(self.state, self.facts, resolver, namespace, self.workloads,
                                 gate=self.gate)
        self.listen = listen
        self.port = 0
        self.direct = direct
        self.direct_port = 0
        limit = settings.connect.manager_max_message
        self.server = grpc.aio.server(interceptors=[AuthInterceptor(self.gate)], options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ])
        pb_grpc.add_ManagerServicer_to_server(self.servicer, self.server)
        self._reaper: asyncio.Task[None] | None = None
        self.dispositions = None if self.workloads is None else Dispositions(
            self.state, self.workloads, settings.intercept.manager_rollout_poll)
        self._disposer: asyncio.Task[None] | None = None
        self.replacements = None if self.workloads is None else Replacements(
            self.state, self.workloads, settings.intercept.manager_rollout_poll)
        self.servicer.replacements = self.replacements
        if kube is not None:
            self.servicer.routes = DialRoutes(kube, self.facts.get,
                                              settings.connect.manager_route_ttl)
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> int:
        try:
            self.port = self.server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise CannotServe(f"cannot listen on {self.listen}: {exc}; is another "
                               "traffic-manager running?") from exc
        if self.direct is not None:
            try:
                self.direct_port = add_direct_port(self.server, *self.direct)
            except CannotServeDirect as exc:  # the port-forward path still works
                log.error("%s", exc)
        await self.server.start()
        self._reaper = spawn(self._reap(), "session-reaper", log)
        if self.dispositions is not None:
            self._disposer = spawn(self.dispositions.run(), "intercept-dispositions", log)
        if self.replacements is not None:
            self._keeper = spawn(self.replacements.run(), "replace-keeper", log)
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
        for task in (self._reaper, self._disposer, self._keeper):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        log.info("traffic-manager stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()
