"""Intercepts from the workstation: list, intercept, leave, uninstall, env, mounts, traffic.

    intercept(spec):  check arguments locally -> CreateIntercept (the manager resolves
                      workload/service/port and refuses clashes before anything changes
                      in the cluster) -> PrepareIntercept (injects the agent, waits for it)
                      -> wait for ACTIVE (WatchIntercepts) -> copy the volumes.
                      Any failure removes the intercept and, when this call injected the
                      agent and nobody else intercepts the workload, uninstalls it again.
    dials:            ReceiveDials stream: each DialRequest dials the intercept's local
                      target and accepts the Tunnel (`open.accept_dial_id`). When nothing
                      listens locally the accepted tunnel carries `error` at once, so the
                      agent answers 502 with that reason instead of waiting.
    traffic:          WatchTraffic stream into a bounded history (intercept.traffic_history)
                      that the daemon API replays and follows.

`tp list` combines the daemon's kube adapter (Deployments, Services; the state text of
`tp_cluster.manager.workloads.list_state`) with the manager's `ListIntercepts`, so other
clients' intercepts show as "intercepted" too.

Three named background tasks (tp-receive-dials, tp-watch-intercepts, tp-watch-traffic)
run while connected; each reopens its stream with the current channel and session when
it ends (reconnects, re-arrivals), logs failures, and is stopped by `stop()`.
Errors are `tp_daemon.errors` (InterceptUsage, InterceptNotFound, InterceptConflict,
InterceptTimeout, InterceptFailed), one line each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import logging
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

import grpc
import h11
from tp_cluster.injector import AGENT_CONTAINER, MOUNT_ROOT
from tp_cluster.manager.workloads import list_state
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.aio import spawn
from tp_protocol.settings import ConnectSettings, InterceptSettings

from tp_daemon.errors import (
    ClusterUnreachable,
    DaemonError,
    InterceptConflict,
    InterceptFailed,
    InterceptNotFound,
    InterceptTimeout,
    InterceptUsage,
)
from tp_daemon.kube import Kube
from tp_daemon.streams import READ_BUFFER, Stream, splice
from tp_daemon.tunnel import TunnelStream

log = logging.getLogger(__name__)

S = mpb.InterceptState
Progress = Callable[[str, str, float, bool], None]

# tar of the agent's view of the app's volumes (the injector mounts them under
# MOUNT_ROOT); python is in every agent image, tar is not guaranteed.
_TAR_SCRIPT = (
    "import os,sys,tarfile\n"
    f"root={MOUNT_ROOT!r}\n"
    "with tarfile.open(fileobj=sys.stdout.buffer,mode='w|gz') as t:\n"
    "    for n in (sorted(os.listdir(root)) if os.path.isdir(root) else []):\n"
    "        t.add(os.path.join(root,n),arcname=n)\n")


class Manager(Protocol):
    """What this module needs of the daemon's `Session`."""

    settings: ConnectSettings

    def manager(self) -> tuple[mgrpc.ManagerStub, mpb.SessionInfo]: ...

    def kube(self) -> Kube: ...

    def namespace(self) -> str: ...

    async def dial(self, ip: str, port: int) -> Stream: ...


def _rpc_error(e: grpc.aio.AioRpcError, what: str) -> DaemonError:
    """A manager's gRPC status as the daemon error the front shows (its text kept)."""
    code, text = e.code(), (e.details() or "").strip()
    if code == grpc.StatusCode.NOT_FOUND:
        return InterceptNotFound(text)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InterceptUsage(text)
    if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
        return InterceptConflict(text)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return InterceptTimeout(f"{what} timed out ({text}); try again or raise "
                                "intercept.activate_timeout")
    return ClusterUnreachable(f"{what} failed: {code.name}: {text}; check `tp status`")


def check_spec(spec: mpb.InterceptSpec) -> None:
    """Local checks so bad input fails before anything changes in the cluster."""
    if not spec.workload:
        raise InterceptUsage("name the workload to intercept: tp intercept WORKLOAD -p PORT")
    if not 0 < spec.target_port < 65536:
        raise InterceptUsage(f"local port {spec.target_port} is not a port: give "
                             "-p LOCALPORT[:SVCPORT] with LOCALPORT 1-65535")
    for match in spec.header_matches:
        if not match.name:
            raise InterceptUsage("an --http-match needs a header name: use KEY=REGEX")
        try:
            re.compile(match.regex)
        except re.error as e:
            raise InterceptUsage(f"--http-match {match.name}={match.regex}: invalid regex "
                                 f"({e}); fix the regular expression") from e


class _Local:
    """What the daemon keeps about one of its intercepts beyond the manager's info."""

    def __init__(self, mount_point: str, own_mount: bool, container_port: int) -> None:
        self.mount_point = mount_point
        self.own_mount = own_mount        # a temp dir this daemon made: removed on leave
        self.container_port = container_port


class Intercepts:
    """The daemon's intercept side for one connection (see the module docstring)."""

    def __init__(self, owner: Manager, settings: InterceptSettings,
                 progress: Progress) -> None:
        self.owner = owner
        self.settings = settings
        self._progress = progress
        self.mine: dict[str, mpb.InterceptInfo] = {}   # name -> latest snapshot entry
        self._local: dict[str, _Local] = {}
        self._changed = asyncio.Event()
        self._seen_snapshot = False
        self.history: collections.deque[mpb.TrafficRecord] = collections.deque(
            maxlen=settings.traffic_history)
        self._followers: set[asyncio.Queue[mpb.TrafficRecord]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._dials: set[asyncio.Task[None]] = set()
        self._op_lock = asyncio.Lock()

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        for name, loop in (("tp-receive-dials", self._receive_dials),
                           ("tp-watch-intercepts", self._watch_intercepts),
                           ("tp-watch-traffic", self._watch_traffic)):
            self._tasks.append(spawn(self._forever(name, loop), name, log))

    async def stop(self) -> None:
        """Stop the streams, then in-flight dials, then remove the mount points we made."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for task in list(self._dials):
            task.cancel()
        await asyncio.gather(*self._dials, return_exceptions=True)
        for name in list(self._local):
            self._forget(name)
        self.mine.clear()

    async def _forever(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run one stream loop again whenever it ends; log why."""
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, DaemonError) as e:
                log.debug("%s ended: %s", name, e)
            except Exception:
                log.exception("%s failed; reopening", name)
            await asyncio.sleep(self.settings.daemon_stream_retry)

    # --- background streams -------------------------------------------------------------

    async def _receive_dials(self) -> None:
        stub, session = self.owner.manager()
        call = stub.ReceiveDials(session)
        try:
            async for request in call:
                task = spawn(self._answer_dial(stub, session, request),
                             f"tp-dial-{request.dial_id}", log)
                self._dials.add(task)
                task.add_done_callback(self._dials.discard)
        finally:
            call.cancel()

    async def _answer_dial(self, stub: mgrpc.ManagerStub, session: mpb.SessionInfo,
                           request: mpb.DialRequest) -> None:
        """Dial the local target, accept the tunnel, splice; a refused dial becomes the
        tunnel's `error` (the agent's 502 reason)."""
        host, port = request.target_host or "127.0.0.1", request.target_port
        name = request.intercept_id.partition(":")[2] or request.intercept_id
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
        if why:
            why += f"; start the local service or run `tp leave {name}`"
        call = stub.Tunnel()
        if conn is None:
            # refused at once: the agent answers 502 with `why` instead of waiting
            log.info("intercept %s: %s", name, why)
            with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError):
                async with asyncio.timeout(self.owner.settings.dial_timeout):
                    await call.write(mpb.TunnelMessage(open=mpb.TunnelOpen(
                        session=session, accept_dial_id=request.dial_id,
                        refused=mpb.TunnelError(code="refused", message=why))))
                    await call.done_writing()
                    while await call.read() is not grpc.aio.EOF:
                        pass
            call.cancel()
            return
        try:
            async with asyncio.timeout(self.owner.settings.dial_timeout):
                await call.write(mpb.TunnelMessage(open=mpb.TunnelOpen(
                    session=session, accept_dial_id=request.dial_id)))
                first = await call.read()
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            log.info("accepting dial %s failed: %s", request.dial_id, e)
            call.cancel()
            conn[1].close()
            return
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "opened":
            log.info("dial %s was not opened: %s", request.dial_id, first)
            call.cancel()
            conn[1].close()
            return
        reader, writer = conn
        await splice(reader, writer, TunnelStream(call, f"{request.source_ip}:"
                                                        f"{request.source_port}"),
                     f"tp-dial-{request.dial_id}")

    async def _watch_intercepts(self) -> None:
        stub, session = self.owner.manager()
        call = stub.WatchIntercepts(session)
        try:
            async for snapshot in call:
                self.mine = {ic.spec.name: ic for ic in snapshot.intercepts}
                self._seen_snapshot = True
                for gone in set(self._local) - set(self.mine):
                    # expired with the session, or removed by an uninstall: drop local state
                    if not self._op_lock.locked():
                        self._forget(gone)
                self._changed.set()
                self._changed = asyncio.Event()
        finally:
            call.cancel()

    async def _watch_traffic(self) -> None:
        stub, session = self.owner.manager()
        call = stub.WatchTraffic(mpb.WatchTrafficRequest(session=session,
                                                         include_unmatched=True))
        try:
            async for record in call:
                self.history.append(record)
                for queue in self._followers:
                    if queue.full():
                        with contextlib.suppress(asyncio.QueueEmpty):
                            queue.get_nowait()  # a slow follower loses its oldest row
                    queue.put_nowait(record)
        finally:
            call.cancel()

    # --- list -----------------------------------------------------------------------------

    async def list_workloads(self, request: dpb.ListRequest) -> dpb.WorkloadList:
        namespace = request.namespace or self.owner.namespace()
        kube = self.owner.kube()
        deployments, services, replicasets = await asyncio.to_thread(kube.list_workloads,
                                                                     namespace)
        stub, session = self.owner.manager()
        try:
            snapshot = await stub.ListIntercepts(
                mpb.ListInterceptsRequest(session=session, namespace=namespace),
                timeout=self.owner.settings.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise _rpc_error(e, "listing intercepts") from e
        by_workload: dict[str, list[mpb.InterceptInfo]] = {}
        for ic in snapshot.intercepts:
            if ic.state != S.INTERCEPT_STATE_REMOVED:
                by_workload.setdefault(ic.spec.workload, []).append(ic)
        result = dpb.WorkloadList()
        for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
            name = d["metadata"]["name"]
            info = dpb.WorkloadInfo(name=name, namespace=namespace, kind="Deployment")
            held = by_workload.get(name, [])
            text = list_state("Deployment", d, services)
            if held:
                info.state = dpb.WORKLOAD_STATE_INTERCEPTED
                info.intercepts.extend(held)
            elif text.startswith("not interceptable"):
                info.state = dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE
                info.reason = text.removeprefix("not interceptable: ")
            elif "already installed" in text:
                info.state = dpb.WORKLOAD_STATE_READY_INSTALLED
            else:
                info.state = dpb.WORKLOAD_STATE_READY_NOT_INSTALLED
            if request.only_intercepted and not held:
                continue
            result.workloads.append(info)
        if not request.only_intercepted:
            # Other kinds are listed with the reason they cannot be intercepted yet.
            for rs in sorted(replicasets, key=lambda r: r["metadata"]["name"]):
                reason = list_state("ReplicaSet", rs, services)
                result.workloads.append(dpb.WorkloadInfo(
                    name=rs["metadata"]["name"], namespace=namespace, kind="ReplicaSet",
                    state=dpb.WORKLOAD_STATE_NOT_INTERCEPTABLE,
                    reason=reason.removeprefix("not interceptable: ")))
        return result

    # --- intercept ------------------------------------------------------------------------

    async def intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        async with self._op_lock:
            return await self._intercept(request)

    async def _intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        spec = mpb.InterceptSpec()
        spec.CopyFrom(request.spec)
        spec.namespace = spec.namespace or self.owner.namespace()
        spec.name = spec.name or f"{spec.workload}-{spec.namespace}"
        spec.target_host = spec.target_host or "127.0.0.1"
        check_spec(spec)
        if spec.name in self.mine:
            if not request.replace:
                raise InterceptConflict(f"you already have an intercept named {spec.name!r}: "
                                        f"`tp leave {spec.name}` first or choose another "
                                        "--name")
            await self._leave(spec.name)
        mount_point, own_mount = "", False
        if not request.no_mount:
            mount_point, own_mount = self._mount_point(spec.mount_point)
        spec.mount_point = mount_point
        stub, session = self.owner.manager()
        s, rpc_timeout = self.settings, self.owner.settings.rpc_timeout
        say = self._say
        say(f"creating intercept {spec.name}")
        try:
            created = await stub.CreateIntercept(
                mpb.CreateInterceptRequest(session=session, spec=spec), timeout=rpc_timeout)
        except grpc.aio.AioRpcError as e:
            _remove_dir(mount_point, own_mount)
            raise _rpc_error(e, "creating the intercept") from e
        prepared: mpb.PreparedIntercept | None = None
        try:
            say(f"preparing {created.spec.workload_kind or 'Deployment'} {spec.workload} "
                "(the traffic-agent is injected when absent)")
            try:
                prepared = await stub.PrepareIntercept(
                    created.spec, timeout=s.activate_timeout + s.daemon_prepare_margin)
            except grpc.aio.AioRpcError as e:
                raise _rpc_error(e, "preparing the intercept") from e
            if prepared.error:
                raise InterceptFailed(prepared.error)
            self._local[spec.name] = _Local(mount_point, own_mount, prepared.container_port)
            info = await self._wait_active(spec.name, created.id)
            await self._wait_serving(info)
            if mount_point:
                say(f"copying the volumes of {spec.workload} to {mount_point}")
                await self._fetch_mounts(info, mount_point)
        except BaseException:
            await self._undo(spec, prepared, mount_point, own_mount)
            raise
        self._progress("intercept", f"intercept {spec.name} is active", 1.0, True)
        return dpb.InterceptResult(intercept=info,
                                   workload_kind=info.spec.workload_kind or "Deployment")

    async def _undo(self, spec: mpb.InterceptSpec, prepared: mpb.PreparedIntercept | None,
                    mount_point: str, own_mount: bool) -> None:
        """Leave nothing behind after a failed intercept (bounded, errors logged)."""
        self._local.pop(spec.name, None)
        _remove_dir(mount_point, own_mount)
        with contextlib.suppress(DaemonError, grpc.aio.AioRpcError):
            stub, session = self.owner.manager()
            timeout = self.owner.settings.rpc_timeout
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.RemoveIntercept(mpb.RemoveInterceptRequest(
                    session=session, name=spec.name), timeout=timeout)
            if prepared is None or prepared.agent_installed:
                return  # the manager restored a failed prepare itself; or not ours
            others = await stub.ListIntercepts(mpb.ListInterceptsRequest(
                session=session, namespace=spec.namespace), timeout=timeout)
            if any(ic.spec.workload == spec.workload for ic in others.intercepts):
                return
            log.info("removing the traffic-agent injected for the failed intercept %s",
                     spec.name)
            await stub.UninstallAgents(mpb.UninstallAgentsRequest(
                session=session, namespace=spec.namespace, workloads=[spec.workload]),
                timeout=self.settings.daemon_uninstall_timeout)

    async def _wait_active(self, name: str, iid: str) -> mpb.InterceptInfo:
        timeout = self.settings.activate_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stub, session = self.owner.manager()
        while True:
            # the watch stream may lag the create: also ask the manager directly
            info = self.mine.get(name)
            if info is None or info.id != iid:
                snapshot = await stub.ListIntercepts(mpb.ListInterceptsRequest(
                    session=session, namespace=""), timeout=self.owner.settings.rpc_timeout)
                info = next((ic for ic in snapshot.intercepts if ic.id == iid), None)
            if info is not None:
                if info.state == S.INTERCEPT_STATE_ACTIVE:
                    return info
                if info.state in (S.INTERCEPT_STATE_AGENT_ERROR, S.INTERCEPT_STATE_CONFLICT):
                    raise InterceptFailed(info.message or "the traffic-agent refused the "
                                          "intercept")
                if info.state == S.INTERCEPT_STATE_REMOVED:
                    raise InterceptFailed(f"intercept {name} was removed: {info.message}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                state = S.Name(info.state) if info else "unknown"
                raise InterceptTimeout(f"intercept {name} did not become ACTIVE within "
                                       f"{timeout:g}s (state {state}); see `kubectl get pods`"
                                       " or raise intercept.activate_timeout")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def _wait_serving(self, info: mpb.InterceptInfo) -> None:
        """Until the Service reaches only agent pods: ACTIVE comes when the first agent
        arrives, while the rollout may still leave old pods in the endpoints."""
        spec, timeout = info.spec, self.settings.activate_timeout
        kube = self.owner.kube()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = ""
        while pending := await asyncio.to_thread(kube.agent_serving, spec.namespace,
                                                 spec.service_name, AGENT_CONTAINER):
            if pending != last:
                self._say(f"waiting: {pending}")
                last = pending
            if loop.time() > deadline:
                raise InterceptTimeout(f"intercept {spec.name} is ACTIVE but {pending} after "
                                       f"{timeout:g}s; see `kubectl -n {spec.namespace} get "
                                       "pods` (is the app ready with the agent?)")
            await asyncio.sleep(self.settings.daemon_rollout_poll)

    def _mount_point(self, wanted: str) -> tuple[str, bool]:
        if not wanted:
            return tempfile.mkdtemp(prefix="telfs-"), True
        path = Path(wanted).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InterceptUsage(f"--mount {wanted}: not an empty folder; give an empty or "
                                 "new folder, true (a temp folder) or false")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InterceptUsage(f"--mount {wanted}: cannot create it ({e.strerror}); give "
                                 "another folder") from e
        return str(path), created

    async def _fetch_mounts(self, info: mpb.InterceptInfo, mount_point: str) -> None:
        """Copy the agent's view of the app's volumes (a tar.gz over pods/exec)."""
        if not info.mounts:
            return
        pod, _, namespace = info.agent_pod.partition(".")
        s = self.settings
        try:
            data = await asyncio.to_thread(
                self.owner.kube().exec_output, namespace or info.spec.namespace, pod,
                AGENT_CONTAINER, ["python3", "-c", _TAR_SCRIPT], timeout=s.daemon_mount_timeout,
                limit=s.daemon_mount_limit)
            await asyncio.to_thread(_extract, data, mount_point)
        except DaemonError as e:
            raise InterceptFailed(f"copying the volumes of {info.spec.workload} failed: {e}; "
                                  "intercept with --mount false to skip them") from e
        except (tarfile.TarError, OSError) as e:
            raise InterceptFailed(f"unpacking the volumes of {info.spec.workload} into "
                                  f"{mount_point} failed: {e}; intercept with --mount false "
                                  "to skip them") from e

    # --- leave / uninstall / env ------------------------------------------------------------

    async def leave(self, name: str) -> None:
        async with self._op_lock:
            await self._leave(name)

    async def _leave(self, name: str) -> None:
        stub, session = self.owner.manager()
        try:
            await stub.RemoveIntercept(mpb.RemoveInterceptRequest(session=session, name=name),
                                       timeout=self.owner.settings.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                self._forget(name)
                raise InterceptNotFound(f"no intercept named {name!r}: see `tp list` for "
                                        "yours") from e
            raise _rpc_error(e, "leaving the intercept") from e
        self.mine.pop(name, None)
        self._forget(name)

    def _forget(self, name: str) -> None:
        local = self._local.pop(name, None)
        if local is not None:
            _remove_dir(local.mount_point, local.own_mount)

    async def uninstall(self, request: dpb.UninstallRequest) -> dpb.UninstallResult:
        stub, session = self.owner.manager()
        if not (request.agents or request.all_agents or request.everything):
            raise InterceptUsage("say what to uninstall: --agent WORKLOAD, --all-agents or "
                                 "--everything")
        namespace = request.namespace or self.owner.namespace()
        every = request.all_agents or request.everything
        message = mpb.UninstallAgentsRequest(
            session=session, namespace="" if request.everything else namespace,
            workloads=[] if every else list(request.agents), all=every)
        try:
            answer = await stub.UninstallAgents(message,
                                                timeout=self.settings.daemon_uninstall_timeout)
        except grpc.aio.AioRpcError as e:
            raise _rpc_error(e, "uninstalling traffic-agents") from e
        if answer.error:
            raise InterceptFailed(answer.error)
        for name, info in list(self.mine.items()):
            restored = f"Deployment/{info.spec.workload}.{info.spec.namespace}"
            if restored in answer.restored or request.everything:
                self.mine.pop(name, None)
                self._forget(name)
        return dpb.UninstallResult(restored=answer.restored)

    def env(self, name: str) -> dpb.EnvInfo:
        info = self.mine.get(name)
        if info is None:
            raise InterceptNotFound(f"no intercept named {name!r}: see `tp list` for yours")
        local = self._local.get(name)
        return dpb.EnvInfo(environment=info.environment, mounts=info.mounts,
                           mount_point=local.mount_point if local else "")

    def intercepts(self) -> list[mpb.InterceptInfo]:
        result = []
        for name, info in sorted(self.mine.items()):
            copy = mpb.InterceptInfo()
            copy.CopyFrom(info)
            local = self._local.get(name)
            copy.spec.mount_point = local.mount_point if local else ""
            result.append(copy)
        return result

    # --- traffic ---------------------------------------------------------------------------

    async def watch_traffic(self, request: dpb.WatchTrafficRequest
                            ) -> AsyncIterator[mpb.TrafficRecord]:
        names = set(request.intercept_names)

        def wanted(r: mpb.TrafficRecord) -> bool:
            if names and r.intercept_name not in names:
                return False
            return bool(r.intercept_name) or request.include_unmatched or bool(names)

        queue: asyncio.Queue[mpb.TrafficRecord] = asyncio.Queue(
            maxsize=self.settings.traffic_watch_queue)
        if request.follow:
            self._followers.add(queue)
        try:
            if request.history:
                for record in list(self.history):
                    if wanted(record):
                        yield record
            while request.follow:
                record = await queue.get()
                if wanted(record):
                    yield record
        finally:
            self._followers.discard(queue)

    async def replay(self, request: dpb.ReplayRequest) -> dpb.ReplayResult:
        """Send a kept request again to the local target or the app in the cluster."""
        record = next((r for r in reversed(self.history) if r.id == request.traffic_id), None)
        if record is None:
            raise InterceptNotFound(f"no traffic row {request.traffic_id!r} is kept any more: "
                                    "pick one from `tp traffic`")
        target = request.target
        if target == dpb.REPLAY_TARGET_UNSPECIFIED:
            target = (dpb.REPLAY_TARGET_LOCAL if record.routed_to == mpb.ROUTED_TO_LOCAL
                      else dpb.REPLAY_TARGET_CLUSTER)
        info = self.mine.get(record.intercept_name) or next(
            (ic for ic in self.mine.values() if (ic.spec.workload, ic.spec.namespace)
             == (record.workload, record.namespace)), None)
        if info is None:
            raise InterceptNotFound(f"none of your intercepts covers {record.workload}."
                                    f"{record.namespace} any more: intercept it again to "
                                    "replay")
        body = bytes(request.body) if request.has_body else bytes(record.request_body_prefix)
        if not request.has_body and record.request_body_truncated:
            raise InterceptUsage("the captured body was truncated: pass the body to replay")
        headers = [(h.name, h.value) for h in record.request_headers
                   if h.name.lower() not in ("content-length", "transfer-encoding",
                                             "connection")]
        for override in request.header_overrides:
            headers = [(k, v) for k, v in headers if k.lower() != override.name.lower()]
            headers.append((override.name, override.value))
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        local = self._local.get(info.spec.name)
        stream: Stream
        try:
            if target == dpb.REPLAY_TARGET_LOCAL:
                from tp_daemon.streams import TcpStream

                stream = await asyncio.wait_for(
                    TcpStream.open(info.spec.target_host or "127.0.0.1", info.spec.target_port),
                    self.settings.local_dial_timeout)
            else:
                port = local.container_port if local else 0
                if not info.pod_ip or not port:
                    raise InterceptFailed("the app's pod address is unknown: intercept again")
                stream = await self.owner.dial(info.pod_ip, port)
        except (OSError, TimeoutError) as e:
            raise InterceptFailed(f"replay could not connect: {e}; is the target up?") from e
        routed = (mpb.ROUTED_TO_LOCAL if target == dpb.REPLAY_TARGET_LOCAL
                  else mpb.ROUTED_TO_CLUSTER)
        return dpb.ReplayResult(record=await _exchange(
            stream, record, headers=headers, body=body, routed=routed,
            limit=self.settings.capture_body_limit,
            seconds=self.settings.local_dial_timeout + self.owner.settings.rpc_timeout))

    def _say(self, message: str) -> None:
        log.info("%s", message)
        self._progress("intercept", message, -1, False)


async def _exchange(stream: Stream, original: mpb.TrafficRecord, *,
                    headers: list[tuple[str, str]], body: bytes, routed: int, limit: int,
                    seconds: float) -> mpb.TrafficRecord:
    """One HTTP/1.1 exchange over `stream`, recorded like the agent records one."""
    conn = h11.Connection(h11.CLIENT)
    host = next((v for k, v in headers if k.lower() == "host"), "replay")
    if not any(k.lower() == "host" for k, _ in headers):
        headers = [("Host", host), *headers]
    record = mpb.TrafficRecord(
        id=f"replay-{original.id}-{time.monotonic_ns()}", intercept_id=original.intercept_id,
        intercept_name=original.intercept_name, client_session=original.client_session,
        workload=original.workload, namespace=original.namespace, pod=original.pod,
        port=original.port, source="replay", method=original.method, path=original.path,
        http_version="1.1", routed_to=routed,  # type: ignore[arg-type]
        request_headers=[mpb.Header(name=k, value=v) for k, v in headers],
        request_size=len(body), request_body_prefix=body[:limit],
        request_body_truncated=len(body) > limit)
    record.time.GetCurrentTime()
    started = time.monotonic()
    payload = bytearray()
    try:
        async with asyncio.timeout(seconds):
            await stream.send(conn.send(h11.Request(method=original.method or "GET",
                                                    target=original.path or "/",
                                                    headers=headers)) or b"")
            await stream.send(conn.send(h11.Data(data=body)) or b"")
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.recv())
                    continue
                if isinstance(event, h11.Response):
                    record.time_to_first_byte_ms = (time.monotonic() - started) * 1000
                    record.status = event.status_code
                    record.reason = event.reason.decode(errors="replace")
                    record.response_headers.extend(
                        mpb.Header(name=k.decode(), value=v.decode(errors="replace"))
                        for k, v in event.headers)
                elif isinstance(event, h11.Data):
                    payload += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
    except (TimeoutError, OSError, h11.ProtocolError, ConnectionError) as e:
        record.error = f"replay failed: {e or type(e).__name__}"
    finally:
        await stream.close()
    record.duration_ms = (time.monotonic() - started) * 1000
    record.response_size = len(payload)
    record.response_body_prefix = bytes(payload[:limit])
    record.response_body_truncated = len(payload) > limit
    return record


def _extract(data: bytes, mount_point: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(mount_point, filter="data")


def _remove_dir(path: str, own: bool) -> None:
    """Remove a mount point: all of it when we made it, else only what we put there."""
    if not path:
        return
    target = Path(path)
    if own:
        shutil.rmtree(target, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

