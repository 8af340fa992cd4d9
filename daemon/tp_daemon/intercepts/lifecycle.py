"""Intercept, leave, uninstall, env: the lifecycle of this daemon's intercepts.

    intercept(spec):  check the spec (tp_protocol.intercept_spec) -> CreateIntercept (the
                      manager resolves workload/service/port and refuses clashes before
                      anything changes) -> PrepareIntercept (injects the agent, waits for
                      it) -> wait until the manager's disposition is ACTIVE -> mount the
                      volumes with sshfs (`DIR:ro` read-only), or copy them where sshfs/FUSE
                      is missing.
                      Any failure (or the caller's deadline) undoes it: the intercept is
                      removed and, when this call injected the agent and nobody else
                      intercepts the workload, the agent is uninstalled again.

Readiness is the manager's verdict only (its dispositions): the daemon never looks at
Pods, Endpoints or container names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn, wait_at_most
from tp_protocol.settings import InterceptSettings

from tp_daemon.errors import (
    DaemonError,
    InterceptConflict,
    InterceptFailed,
    InterceptNotFound,
    InterceptTimeout,
    InterceptUsage,
)
from tp_daemon.intercepts import volumes
from tp_daemon.intercepts.base import Book, Local, Owner, Progress, check_spec, rpc_error

log = logging.getLogger(__name__)

S = mpb.InterceptState


@dataclass
class Lifecycle:
    owner: Owner
    settings: InterceptSettings
    book: Book
    progress: Progress
    """Where progress messages go (the daemon's WatchProgress)."""

    def _say(self, message: str) -> None:
        log.info("%s", message)
        self.progress("intercept", message, -1, False)

    # --- intercept --------------------------------------------------------------------

    async def intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        async with self.book.op_lock:
            return await self._intercept(request)

    async def _intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        spec = mpb.InterceptSpec()
        spec.CopyFrom(request.spec)
        spec.namespace = spec.namespace or self.owner.namespace()
        spec.name = spec.name or f"{spec.workload}-{spec.namespace}" + (
            "-wiretap" if spec.mirror else "")
        spec.target_host = spec.target_host or "127.0.0.1"
        check_spec(spec)
        if spec.name in self.book.mine:
            if not request.replace:
                raise InterceptConflict(f"you already have an intercept named {spec.name!r}: "
                                        f"`tp leave {spec.name}` first or choose another "
                                        "--name")
            await self._leave(spec.name)
        mount_point, own_mount, mode = "", False, ""
        if not request.no_mount:
            wanted, mode = volumes.split_mode(spec.mount_point)
            mount_point, own_mount = volumes.mount_point(wanted)
        spec.mount_point = mount_point
        stub, session = self.owner.manager()
        s, rpc_timeout = self.settings, self.owner.settings.rpc_timeout
        self._say(f"creating intercept {spec.name}")
        try:
            created = await stub.CreateIntercept(
                mpb.CreateInterceptRequest(session=session, spec=spec), timeout=rpc_timeout)
        except grpc.aio.AioRpcError as e:
            volumes.remove_dir(mount_point, own_mount)
            raise rpc_error(e, "creating the intercept") from e
        prepared: mpb.PreparedIntercept | None = None
        try:
            self._say(f"preparing {created.spec.workload_kind or 'Deployment'} {spec.workload} "
                      "(the traffic-agent is injected when absent)")
            try:
                prepared = await stub.PrepareIntercept(
                    created.spec, timeout=s.activate_timeout + s.daemon_prepare_margin)
            except grpc.aio.AioRpcError as e:
                raise rpc_error(e, "preparing the intercept") from e
            if prepared.error:
                raise InterceptFailed(prepared.error)
            local = Local(mount_point, own_mount, prepared.container_port, spec)
            self.book.local[spec.name] = local
            info = await self._wait_active(spec.name, created.id)
            if mount_point:
                await self._mount(info, local, mode)
        except BaseException:
            # shielded: a caller's deadline cancels the wait, never the clean-up
            await asyncio.shield(spawn(self._undo(spec, prepared, mount_point, own_mount),
                                       f"tp-undo-{spec.name}", log))
            raise
        self.progress("intercept", f"intercept {spec.name} is active", 1.0, True)
        return dpb.InterceptResult(intercept=info,
                                   workload_kind=info.spec.workload_kind or "Deployment")

    async def _mount(self, info: mpb.InterceptInfo, local: Local, mode: str) -> None:
        """Mount the volumes live with sshfs; copy them where that cannot work."""
        volumes.check_writable(info, mode)
        workload, path = info.spec.workload, local.mount_point
        if not info.mounts:
            return
        why = volumes.live_unavailable() or ("" if info.sftp_port else
                                             "the traffic-agent serves no SFTP (older agent)")
        if why:
            self._say(f"{why}: copying the volumes of {workload} to {path} instead (a "
                      "snapshot, not a live mount)")
            await volumes.fetch(self.owner, info, path, self.settings)
            return
        self._say(f"mounting the volumes of {workload} at {path} (sshfs"
                  f"{', read-only' if mode == 'ro' else ''})")
        try:
            local.live = await volumes.mount(self.owner, info, path, own=local.own_mount,
                                             read_only=mode == "ro", settings=self.settings)
        except (InterceptFailed, OSError) as e:
            self._say(f"{e}: copying the volumes of {workload} to {path} instead (a "
                      "snapshot, not a live mount)")
            await volumes.fetch(self.owner, info, path, self.settings)

    async def _undo(self, spec: mpb.InterceptSpec, prepared: mpb.PreparedIntercept | None,
                    mount_point: str, own_mount: bool) -> None:
        """Leave nothing behind after a failed intercept (bounded, errors logged)."""
        local = self.book.local.pop(spec.name, None)
        if local is not None and local.live is not None:
            volumes.unmount(local.live)
        volumes.remove_dir(mount_point, own_mount)
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
        """Until the manager's disposition is ACTIVE; its messages are the progress."""
        timeout = self.settings.activate_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stub, session = self.owner.manager()
        last = ""
        while True:
            # the watch stream may lag the create: also ask the manager directly
            info = self.book.mine.get(name)
            if info is None or info.id != iid:
                snapshot = await stub.ListIntercepts(mpb.ListInterceptsRequest(
                    session=session, namespace=""), timeout=self.owner.settings.rpc_timeout)
                info = next((ic for ic in snapshot.intercepts if ic.id == iid), None)
            if info is not None:
                if info.state == S.INTERCEPT_STATE_ACTIVE:
                    # listings read the book: it must not show an older snapshot's copy
                    self.book.mine[name] = info
                    return info
                if info.state in (S.INTERCEPT_STATE_AGENT_ERROR, S.INTERCEPT_STATE_CONFLICT):
                    raise InterceptFailed(info.message or "the traffic-agent refused the "
                                          "intercept")
                if info.state == S.INTERCEPT_STATE_REMOVED:
                    raise InterceptFailed(f"intercept {name} was removed: {info.message}")
                if info.message and info.message != last:
                    last = info.message
                    self._say(f"waiting: {last}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                state = S.Name(info.state) if info else "unknown"
                why = f" ({info.message})" if info and info.message else ""
                raise InterceptTimeout(f"intercept {name} did not become ACTIVE within "
                                       f"{timeout:g}s (state {state}{why}); see `kubectl get "
                                       "pods` or raise intercept.activate_timeout")
            await wait_at_most(self.book.changed.wait(), min(remaining, 0.5))

    # --- restore after a re-arrival ---------------------------------------------------

    async def restore(self) -> tuple[list[str], list[str]]:
        """Re-create every intercept this daemon had (after a new session: the manager
        restarted or expired the old one); returns (restored, failed with reasons)."""
        restored: list[str] = []
        failed: list[str] = []
        async with self.book.op_lock:
            try:
                for name, local in sorted(self.book.local.items()):
                    try:
                        await self._recreate(local.spec)
                        restored.append(name)
                    except (DaemonError, grpc.aio.AioRpcError) as e:
                        log.warning("intercept %s could not be restored: %s", name, e)
                        failed.append(f"{name} ({e})")
                        self.book.mine.pop(name, None)
                        self.forget(name)
            finally:
                self.book.restoring = False
        return restored, failed

    async def _recreate(self, spec: mpb.InterceptSpec) -> None:
        """CreateIntercept + PrepareIntercept again and wait for ACTIVE (the agent is
        installed already; its volumes were copied before). Retried until the
        intercept's activate timeout while the new manager still settles."""
        s, rpc_timeout = self.settings, self.owner.settings.rpc_timeout
        loop = asyncio.get_running_loop()
        give_up = loop.time() + s.activate_timeout
        delay = 0.1
        while True:
            stub, session = self.owner.manager()
            try:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    # an earlier attempt may have got as far as the create
                    await stub.RemoveIntercept(mpb.RemoveInterceptRequest(
                        session=session, name=spec.name), timeout=rpc_timeout)
                created = await stub.CreateIntercept(
                    mpb.CreateInterceptRequest(session=session, spec=spec), timeout=rpc_timeout)
                prepared = await stub.PrepareIntercept(
                    created.spec, timeout=s.activate_timeout + s.daemon_prepare_margin)
                if prepared.error:
                    raise InterceptFailed(prepared.error)
                await self._wait_active(spec.name, created.id)
                log.info("intercept %s restored", spec.name)
                return
            except grpc.aio.AioRpcError as e:
                if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                grpc.StatusCode.ALREADY_EXISTS) or loop.time() > give_up:
                    raise rpc_error(e, f"restoring intercept {spec.name}") from e
                log.info("restoring intercept %s: %s; retrying", spec.name, e.details())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # --- leave / uninstall / env --------------------------------------------------------

    async def leave(self, name: str) -> str:
        """Remove intercept `name`; returns a note for the user ("" = none)."""
        async with self.book.op_lock:
            return await self._leave(name)

    async def _leave(self, name: str) -> str:
        stub, session = self.owner.manager()
        known = name in self.book.mine or name in self.book.local
        try:
            await stub.RemoveIntercept(mpb.RemoveInterceptRequest(session=session, name=name),
                                       timeout=self.owner.settings.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise rpc_error(e, "leaving the intercept") from e
            # the manager forgot it (restarted, session expired): the name is free again
            self.book.mine.pop(name, None)
            self.forget(name)
            if not known:
                raise InterceptNotFound(f"no intercept named {name!r}: see `tp list` for "
                                        "yours") from e
            note = (f"the traffic-manager no longer knew intercept {name}; removed it on "
                    "this workstation")
            log.warning("%s", note)
            return note
        self.book.mine.pop(name, None)
        self.forget(name)
        return ""

    def forget(self, name: str) -> None:
        local = self.book.local.pop(name, None)
        if local is not None:
            if local.live is not None:
                volumes.unmount(local.live)
            volumes.remove_dir(local.mount_point, local.own_mount)

    async def uninstall(self, request: dpb.UninstallRequest) -> dpb.UninstallResult:
        stub, session = self.owner.manager()
        if not (request.agents or request.all_agents or request.everything):
            raise InterceptUsage("say what to uninstall: --agent WORKLOAD, --all-agents or "
                                 "--everything")
        namespace = request.namespace or self.owner.namespace()
        every = request.all_agents or request.everything
        message = mpb.UninstallAgentsRequest(
            session=session, namespace="" if request.everything else namespace,
            workloads=[] if every else list(request.agents), all=every,
            force=request.force or request.everything)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.daemon_uninstall_timeout
        while True:
            try:
                answer = await stub.UninstallAgents(message,
                                                    timeout=max(1.0, deadline - loop.time()))
                break
            except grpc.aio.AioRpcError as e:
                # the port-forward under the channel dropped mid-call: restoring workloads
                # is idempotent, so ask again over the rebuilt channel while time is left
                if e.code() != grpc.StatusCode.UNAVAILABLE or loop.time() > deadline - 2:
                    raise rpc_error(e, "uninstalling traffic-agents") from e
                log.warning("uninstalling traffic-agents: %s; asking again", e.details())
                self.owner.channel_trouble()
                await asyncio.sleep(self.settings.daemon_stream_retry)
                stub, session = self.owner.manager()
                message.session.CopyFrom(session)
        if answer.error:
            raise InterceptFailed(answer.error)
        for name, info in list(self.book.mine.items()):
            restored = (f"{info.spec.workload_kind or 'Deployment'}/{info.spec.workload}."
                        f"{info.spec.namespace}")
            if restored in answer.restored or request.everything:
                self.book.mine.pop(name, None)
                self.forget(name)
        return dpb.UninstallResult(restored=answer.restored, ended=answer.ended)

    def env(self, name: str) -> dpb.EnvInfo:
        info = self.book.mine.get(name)
        if info is None:
            raise InterceptNotFound(f"no intercept named {name!r}: see `tp list` for yours")
        local = self.book.local.get(name)
        return dpb.EnvInfo(environment=info.environment, mounts=info.mounts,
                           mount_point=local.mount_point if local else "")

    def intercepts(self) -> list[mpb.InterceptInfo]:
        result = []
        for name, info in sorted(self.book.mine.items()):
            copy = mpb.InterceptInfo()
            copy.CopyFrom(info)
            copy.volumes_token = ""  # the front has no use for it
            local = self.book.local.get(name)
            copy.spec.mount_point = local.mount_point if local else ""
            result.append(copy)
        return result
