"""The daemon API (tp.daemon.v1.Daemon) on a Unix socket, served by grpc.aio.

Failures the user can fix come back inside the reply (`error`), never as gRPC status
codes: gRPC errors mean the daemon itself is unreachable or broken.

Every RPC honours the caller's deadline (`context.time_remaining()`): the work gets that
time minus `intercept.daemon_reply_margin`; when it runs out the reply is a TIMEOUT error
that names what was still pending (the operation's last progress message), and the work
is cancelled (an intercept undoes itself in the background). So the front passes the
time it is willing to wait and need not know the daemon's internal timeouts.

The socket answers before the connect path is imported (`tp_daemon.preload`): RPCs
that need the `Session` await its preparation (imports, then a stale nft table removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import empty_pb2
from tp_protocol import VERSION
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import daemon_pb2_grpc as dgrpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import spawn
from tp_protocol.settings import ConnectSettings, get_settings

from tp_daemon import paths
from tp_daemon.errors import DaemonError, InterceptTimeout
from tp_daemon.preload import Preload, resume_gc

if TYPE_CHECKING:
    from tp_daemon.intercepts import Intercepts
    from tp_daemon.session import Session

log = logging.getLogger(__name__)

R = TypeVar("R")


def error_of(e: BaseException) -> dpb.Error:
    """The reply's `error` for an exception: DaemonErrors keep their message and code."""
    if isinstance(e, DaemonError):
        return dpb.Error(code=dpb.ErrorCode.Value(f"ERROR_CODE_{e.code}"), message=str(e))
    if isinstance(e, grpc.aio.AioRpcError):
        return dpb.Error(code=dpb.ERROR_CODE_CLUSTER_UNREACHABLE,
                         message=f"the traffic-manager failed: {e.code().name}: {e.details()}; "
                                 "try `tp quit` and `tp connect` again")
    return dpb.Error(code=dpb.ERROR_CODE_INTERNAL,
                     message=f"internal error ({type(e).__name__}: {e}); see {paths.log_path()}")


class DaemonService(dgrpc.DaemonServicer):
    """Implements the RPCs; `stopped` is set once `Quit` asked the process to end."""

    def __init__(self, settings: ConnectSettings, *, force_proxy: bool,
                 preload: Preload) -> None:
        self._loop = asyncio.get_running_loop()
        self._watchers: set[asyncio.Queue[dpb.Progress | None]] = set()
        self._settings = settings
        self._force_proxy = force_proxy
        self._preload = preload
        self._prepared = spawn(self._prepare(), "tp-prepare-session", log)
        self._loop.call_later(get_settings().connect.daemon_start_gc_pause, resume_gc)
        self.stopped = asyncio.Event()
        self._last_progress: dict[str, str] = {}  # operation -> its latest message

    async def _prepare(self) -> Session:
        from tp_daemon import leftovers
        from tp_daemon.routing import can_route, remove_stale_table

        async def clean() -> None:
            # what a daemon killed before us left (nft tables, links, mount folders):
            # removed while the connect path still imports (they do not depend on it)
            await asyncio.to_thread(leftovers.clean)
            if can_route():
                with contextlib.suppress(DaemonError):
                    if await remove_stale_table(self._settings.nft_table):
                        log.warning("removed nft table %s left by a daemon that died",
                                    self._settings.nft_table)

        await asyncio.gather(self._preload.wait(), clean())
        from tp_daemon.session import Session

        return Session(self._settings, self._publish, force_proxy=self._force_proxy)

    async def session(self) -> Session:
        """The session, once its modules are imported (raises what their import raised)."""
        return await asyncio.shield(self._prepared)

    def _publish(self, operation: str, message: str, fraction: float, done: bool) -> None:
        """Progress sink; called from the loop and from worker threads (install)."""
        event = dpb.Progress(operation=operation, message=message, fraction=fraction, done=done)

        def put() -> None:
            self._last_progress[operation] = self._last_progress[""] = message
            for queue in self._watchers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)

        self._loop.call_soon_threadsafe(put)

    def _version(self) -> dpb.VersionInfo:
        return dpb.VersionInfo(name="tp-daemon", version=VERSION, pid=os.getpid(),
                               log_file=str(paths.log_path()))

    async def Version(self, request: empty_pb2.Empty, context: Any) -> dpb.VersionInfo:
        return self._version()

    async def Connect(self, request: dpb.ConnectRequest, context: Any) -> dpb.ConnectInfo:
        try:
            session = await self.session()  # imports tp_daemon.session (see tp_daemon.preload)
            from tp_daemon.session import ConnectParams

            params = ConnectParams(request.kubeconfig, request.context, request.namespace,
                                   request.manager_namespace, request.proxy_mode,
                                   request.manager_image, request.agent_image,
                                   request.image_registry, tuple(request.image_pull_secrets),
                                   request.manager_address, request.manager_service_type)
            log.info("connect %s", params)
            return await self._within_deadline("connect", "connect", context,
                                               lambda: session.connect(params))
        except Exception as e:
            log.warning("connect failed: %s", e, exc_info=not isinstance(e, DaemonError))
            return dpb.ConnectInfo(error=error_of(e))
        finally:
            resume_gc()  # the connect path is imported now

    async def Status(self, request: empty_pb2.Empty, context: Any) -> dpb.StatusInfo:
        session = await self.session()
        await session.probe()
        status = session.status()
        status.daemon.CopyFrom(self._version())
        if session.intercepts is not None:
            status.intercepts.extend(session.intercepts.intercepts())
        return status

    # --- intercepts -------------------------------------------------------------------

    async def _within_deadline(self, what: str, operation: str, context: Any,
                               call: Callable[[], Awaitable[R]]) -> R:
        """`call`, cancelled when the caller's deadline (less the reply margin) comes;
        then an InterceptTimeout that says what was still pending."""
        remaining = context.time_remaining() if context is not None else None
        if remaining is None:
            return await call()
        budget = remaining - get_settings().intercept.daemon_reply_margin
        self._last_progress.pop(operation, None)
        self._last_progress.pop("", None)
        task = spawn(call(), f"tp-rpc-{what}", log)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(budget, 0.0))
        except TimeoutError:
            task.cancel()  # its own clean-up (e.g. an intercept's undo) goes on
            pending = (self._last_progress.get(operation) or self._last_progress.get("")
                       or f"the {what} to finish")
            raise InterceptTimeout(f"{what} did not finish within the {remaining:.1f}s this "
                                   f"call allowed; still waiting for: {pending}; it was "
                                   "cancelled (and undone): call again with a longer "
                                   "timeout") from None

    async def _reply(self, what: str, make: Callable[[], R], call: Callable[[], Awaitable[R]],
                     context: Any = None, operation: str = "") -> R:
        """Run `call` within the caller's deadline; a failure becomes the reply's `error`
        (logged with its reason)."""
        try:
            return await self._within_deadline(what, operation or what, context, call)
        except Exception as e:
            log.warning("%s failed: %s", what, e, exc_info=not isinstance(e, DaemonError))
            reply = make()
            reply.error.CopyFrom(error_of(e))  # type: ignore[attr-defined]
            return reply

    async def _intercepts(self) -> Intercepts:
        return await (await self.session()).ready_intercepts()

    async def List(self, request: dpb.ListRequest, context: Any) -> dpb.WorkloadList:
        async def workloads() -> dpb.WorkloadList:
            return await (await self._intercepts()).list_workloads(request)

        return await self._reply("list", dpb.WorkloadList, workloads, context)

    async def Intercept(self, request: dpb.InterceptRequest, context: Any
                        ) -> dpb.InterceptResult:
        async def intercept() -> dpb.InterceptResult:
            return await (await self._intercepts()).intercept(request)

        log.info("intercept %s", request.spec.workload)
        return await self._reply("intercept", dpb.InterceptResult, intercept, context)

    async def Leave(self, request: dpb.LeaveRequest, context: Any) -> dpb.LeaveResult:
        async def leave() -> dpb.LeaveResult:
            return dpb.LeaveResult(note=await (await self._intercepts()).leave(request.name))

        return await self._reply("leave", dpb.LeaveResult, leave, context)

    async def ListIntercepts(self, request: empty_pb2.Empty, context: Any
                             ) -> dpb.InterceptList:
        async def mine() -> dpb.InterceptList:
            return dpb.InterceptList(
                intercepts=(await self._intercepts()).intercepts())

        return await self._reply("list intercepts", dpb.InterceptList, mine, context)

    async def GetEnv(self, request: dpb.GetEnvRequest, context: Any) -> dpb.EnvInfo:
        async def env() -> dpb.EnvInfo:
            return (await self._intercepts()).env(request.name)

        return await self._reply("get env", dpb.EnvInfo, env, context)

    async def Uninstall(self, request: dpb.UninstallRequest, context: Any
                        ) -> dpb.UninstallResult:
        async def uninstall() -> dpb.UninstallResult:
            if request.everything:
                timeout = get_settings().intercept.daemon_manager_removal_timeout
                return await (await self.session()).uninstall_everything(timeout)
            return await (await self._intercepts()).uninstall(request)

        log.info("uninstall agents=%s all=%s everything=%s", list(request.agents),
                 request.all_agents, request.everything)
        return await self._reply("uninstall", dpb.UninstallResult, uninstall, context)

    async def WatchTraffic(self, request: dpb.WatchTrafficRequest, context: Any
                           ) -> AsyncIterator[mpb.TrafficRecord]:
        intercepts = (await self.session()).intercepts
        if intercepts is None:
            return  # not connected: no rows (the stream just ends)
        async for record in intercepts.watch_traffic(request):
            yield record

    async def Replay(self, request: dpb.ReplayRequest, context: Any) -> dpb.ReplayResult:
        async def replay() -> dpb.ReplayResult:
            return await (await self._intercepts()).replay(request)

        return await self._reply("replay", dpb.ReplayResult, replay, context)

    # --- hold (tp_daemon.intercepts.hold) ------------------------------------------------

    async def SetHold(self, request: dpb.HoldRequest, context: Any) -> dpb.HoldResult:
        async def hold() -> dpb.HoldResult:
            return await (await self._intercepts()).set_hold(request)

        return await self._reply("hold", dpb.HoldResult, hold, context)

    async def ListHeld(self, request: dpb.ListHeldRequest, context: Any) -> dpb.HeldList:
        async def held() -> dpb.HeldList:
            return (await self._intercepts()).list_held(request)

        return await self._reply("list held", dpb.HeldList, held, context)

    async def DecideHeld(self, request: dpb.HeldDecision, context: Any) -> dpb.HeldOutcome:
        async def decide() -> dpb.HeldOutcome:
            return await (await self._intercepts()).decide_held(request)

        return await self._reply("decide held", dpb.HeldOutcome, decide, context)

    async def GatherLogs(self, request: dpb.GatherLogsRequest, context: Any
                         ) -> AsyncIterator[dpb.GatheredLog]:
        """The manager's and agents' logs as the manager collects them (its GatherLogs)."""
        settings = get_settings().connect
        try:
            stub, info = (await self.session()).manager()
            call = stub.GatherLogs(mpb.GatherLogsRequest(
                session=info, max_bytes=request.max_bytes or settings.gather_logs_max_bytes),
                timeout=settings.gather_logs_timeout)
            async for entry in call:
                yield dpb.GatheredLog(log=entry)
        except Exception as e:
            log.warning("gather-logs failed: %s", e, exc_info=not isinstance(e, DaemonError))
            yield dpb.GatheredLog(error=error_of(e))

    async def Quit(self, request: dpb.QuitRequest, context: Any) -> dpb.QuitInfo:
        log.info("quit (keep_daemon=%s)", request.keep_daemon)
        try:
            was = await (await self.session()).disconnect()
        except Exception as e:
            log.exception("disconnect failed")
            return dpb.QuitInfo(error=error_of(e))
        if not request.keep_daemon:
            self.stopped.set()
        return dpb.QuitInfo(was_connected=was)

    async def WatchProgress(self, request: empty_pb2.Empty, context: Any
                            ) -> AsyncIterator[dpb.Progress]:
        queue: asyncio.Queue[dpb.Progress | None] = asyncio.Queue(maxsize=1000)
        self._watchers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._watchers.discard(queue)

    async def close(self) -> None:
        for queue in self._watchers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if not self._prepared.done():  # stopped while importing: nothing to undo yet
            self._prepared.cancel()
            await asyncio.gather(self._prepared, return_exceptions=True)
            return
        if not self._prepared.cancelled() and self._prepared.exception() is None:
            await self._prepared.result().disconnect()


async def serve(socket_path: str, settings: ConnectSettings, *, force_proxy: bool,
                stop: asyncio.Event, preload: Preload,
                ready: Callable[[], None] | None = None) -> None:
    """Serve until `stop` is set or a client calls Quit; then disconnect and stop in order.

    `preload` imports the connect path meanwhile; `ready` is called once the socket
    answers (it tells the process that started the daemon)."""
    service = DaemonService(settings, force_proxy=force_proxy, preload=preload)
    server = grpc.aio.server()
    dgrpc.add_DaemonServicer_to_server(service, server)
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    os.chmod(socket_path, 0o600)
    log.info("tp-daemon %s serving on %s (pid %d)", VERSION, socket_path, os.getpid())
    if ready is not None:
        ready()
    quit_wait = asyncio.create_task(service.stopped.wait(), name="tp-wait-quit")
    stop_wait = asyncio.create_task(stop.wait(), name="tp-wait-signal")
    await asyncio.wait({quit_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    for task in (quit_wait, stop_wait):
        task.cancel()
    # Routes and nft go first (the user's traffic), then the API (lets Quit's reply out).
    await service.close()
    await server.stop(grace=1.0)
    log.info("tp-daemon stopped")
