"""The front's one gRPC client of the workstation daemon (Unix socket), every call bounded.

Every daemon call of the front goes through `DaemonClient`: it gives each call one deadline
from `Settings.notebook` (the daemon answers within it or says what it waits for), and
turns gRPC failures and replies' `error` fields into the front's errors, once.
Also starts the daemon (`python -m tp_daemon`, detached, logging to its file) when
`tp connect` finds none, and waits for it to answer.

Errors: `DaemonNotRunning` (nothing answers on the socket), `DaemonError` (the daemon
failed or missed the deadline), and for a reply's `error` the `UsageError` /
`ClusterError` / `DaemonError` its code stands for.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from tp_daemon import paths
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import daemon_pb2_grpc as dgrpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter import daemon_spawn
from tp_jupyter.errors import ClusterError, DaemonError, DaemonNotRunning, TpError, UsageError

_R = TypeVar("_R", bound=Message)


def _quick() -> float:
    return get_settings().notebook.daemon_call_timeout


_ERRORS: dict[int, type[TpError]] = {
    dpb.ERROR_CODE_USAGE: UsageError,
    dpb.ERROR_CODE_KUBECONFIG: UsageError,
    dpb.ERROR_CODE_NOT_FOUND: UsageError,
    dpb.ERROR_CODE_CONFLICT: UsageError,
    dpb.ERROR_CODE_CLUSTER_UNREACHABLE: ClusterError,
    dpb.ERROR_CODE_PERMISSION: ClusterError,
    dpb.ERROR_CODE_INSTALL: ClusterError,
    dpb.ERROR_CODE_VERSION_SKEW: ClusterError,
}


def check(reply: Any) -> None:
    """Raise the front's error for a reply whose `error` field is set."""
    if reply.HasField("error"):
        code = str(dpb.ErrorCode.Name(reply.error.code)).removeprefix("ERROR_CODE_").lower()
        raise _ERRORS.get(reply.error.code, DaemonError)(reply.error.message, code=code)


def _rpc_failed(e: grpc.RpcError, method: str, timeout: float | None) -> NoReturn:
    code = e.code() if isinstance(e, grpc.Call) else None
    if code == grpc.StatusCode.UNAVAILABLE:
        raise DaemonNotRunning("the tp daemon is not running; run `tp connect` (in a "
                               "notebook: `%tp connect`)") from e
    if code == grpc.StatusCode.UNIMPLEMENTED:
        raise DaemonError(f"this tp daemon has no {method} (an older version); run `tp quit` "
                          "then `tp connect`") from e
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise DaemonError(f"the tp daemon did not answer {method} within {timeout or 0:.0f} "
                          f"s; see {paths.log_path()}") from e
    details = e.details() if isinstance(e, grpc.Call) else str(e)
    raise DaemonError(f"the tp daemon failed {method}: {details}; see "
                      f"{paths.log_path()}") from e


class TrafficStream:
    """The daemon's traffic rows as an iterator; `cancel()` (any thread) ends it quietly."""

    def __init__(self, call: Any, timeout: float | None) -> None:
        self._call = call
        self._timeout = timeout
        self._cancelled = False

    def __iter__(self) -> Iterator[mpb.TrafficRecord]:
        try:
            yield from self._call
        except grpc.RpcError as e:
            if not self._cancelled:
                _rpc_failed(e, "WatchTraffic", self._timeout)

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()


class DaemonClient:
    """One channel to the daemon; use as a context manager or call `close()`."""

    def __init__(self, socket_path: Path | None = None) -> None:
        self.socket_path = socket_path or paths.socket_path()
        self._channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        self._stub = dgrpc.DaemonStub(self._channel)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any, reply: type[_R], timeout: float) -> _R:
        """One unary call with its deadline; a reply's `error` is raised too."""
        try:
            result = cast(_R, getattr(self._stub, method)(request, timeout=timeout))
        except grpc.RpcError as e:
            _rpc_failed(e, method, timeout)
        if "error" in reply.DESCRIPTOR.fields_by_name:
            check(result)
        return result

    def version(self, timeout: float | None = None) -> dpb.VersionInfo:
        t = timeout or get_settings().notebook.daemon_call_timeout
        return self._call("Version", empty_pb2.Empty(), dpb.VersionInfo, t)

    def connect(self, request: dpb.ConnectRequest) -> dpb.ConnectInfo:
        return self._call("Connect", request, dpb.ConnectInfo,
                          get_settings().notebook.connect_call_timeout)

    def status(self, timeout: float | None = None) -> dpb.StatusInfo:
        return self._call("Status", empty_pb2.Empty(), dpb.StatusInfo, timeout or _quick())

    def quit(self, keep_daemon: bool = False) -> dpb.QuitInfo:
        return self._call("Quit", dpb.QuitRequest(keep_daemon=keep_daemon), dpb.QuitInfo,
                          _quick())

    def list_workloads(self, request: dpb.ListRequest, timeout: float | None = None
                       ) -> dpb.WorkloadList:
        return self._call("List", request, dpb.WorkloadList, timeout or _quick())

    def intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        return self._call("Intercept", request, dpb.InterceptResult,
                          get_settings().notebook.intercept_call_timeout)

    def leave(self, name: str) -> dpb.LeaveResult:
        return self._call("Leave", dpb.LeaveRequest(name=name), dpb.LeaveResult, _quick())

    def uninstall(self, request: dpb.UninstallRequest) -> dpb.UninstallResult:
        return self._call("Uninstall", request, dpb.UninstallResult,
                          get_settings().notebook.uninstall_call_timeout)

    def replay(self, request: dpb.ReplayRequest) -> dpb.ReplayResult:
        return self._call("Replay", request, dpb.ReplayResult,
                          get_settings().notebook.replay_timeout)

    def set_hold(self, request: dpb.HoldRequest) -> dpb.HoldResult:
        return self._call("SetHold", request, dpb.HoldResult, _quick())

    def list_held(self, request: dpb.ListHeldRequest) -> dpb.HeldList:
        return self._call("ListHeld", request, dpb.HeldList, _quick())

    def decide_held(self, request: dpb.HeldDecision) -> dpb.HeldOutcome:
        return self._call("DecideHeld", request, dpb.HeldOutcome,
                          get_settings().notebook.hold_call_timeout)

    def watch_traffic(self, names: Sequence[str] = (), *, follow: bool, history: bool = True
                      ) -> TrafficStream:
        """The kept rows (`history`), then, with `follow`, live rows until `cancel()`.

        Without `follow` the whole read is bounded by `notebook.traffic_rpc_timeout`; a
        followed stream lives as long as its reader wants it."""
        request = dpb.WatchTrafficRequest(intercept_names=list(names), history=history,
                                          follow=follow)
        timeout = None if follow else get_settings().notebook.traffic_rpc_timeout
        return TrafficStream(self._stub.WatchTraffic(request, timeout=timeout), timeout)

    def gather_logs(self, max_bytes: int) -> list[mpb.ComponentLog]:
        """The traffic-manager's and agents' logs, as the manager collects them."""
        timeout = get_settings().connect.gather_logs_timeout + _quick()
        logs: list[mpb.ComponentLog] = []
        try:
            for item in self._stub.GatherLogs(dpb.GatherLogsRequest(max_bytes=max_bytes),
                                              timeout=timeout):
                check(item)
                logs.append(item.log)
        except grpc.RpcError as e:
            _rpc_failed(e, "GatherLogs", timeout)
        return logs

    @contextlib.contextmanager
    def progress(self, sink: Callable[[dpb.Progress], None]) -> Iterator[None]:
        """Deliver the daemon's Progress events to `sink` (in a named thread) in the body."""
        stream = self._stub.WatchProgress(empty_pb2.Empty())

        def pump() -> None:
            with contextlib.suppress(grpc.RpcError):
                for event in stream:
                    sink(event)

        thread = threading.Thread(target=pump, name="tp-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stream.cancel()
            thread.join(timeout=get_settings().notebook.handler_stop_timeout)


def running(socket_path: Path | None = None) -> bool:
    """Whether a daemon answers on the socket."""
    path = socket_path or paths.socket_path()
    if not path.exists():
        return False
    with DaemonClient(path) as client:
        try:
            client.version(timeout=get_settings().notebook.daemon_probe_timeout)
        except DaemonError:
            return False
    return True


def start_daemon(proxy_mode: bool = False) -> None:
    """Start `python -m tp_daemon` detached and wait until it answers.

    The daemon inherits the write end of a pipe and writes a line to it once its socket
    answers; EOF without that line means it exited (a daemon started at the same moment
    by another `tp connect` may have won the socket: then that one is used)."""
    log_file = paths.log_path()
    timeout = get_settings().connect.daemon_start_timeout
    early = None if proxy_mode else daemon_spawn.claim()  # `tp connect` started it already
    proc, read_end = early or daemon_spawn.spawn(proxy_mode)
    try:
        readable, _, _ = select.select([read_end], [], [], timeout)
        line = os.read(read_end, 64) if readable else None
    finally:
        os.close(read_end)
    if line:
        return
    if line is None:
        # Leave nothing behind: a daemon that answers too late would linger unconnected.
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise DaemonError(f"the tp daemon did not answer within {timeout:.0f} s; see "
                          f"{log_file}")
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if running():
        return
    raise DaemonError(f"the tp daemon exited at start (status {proc.returncode}); see "
                      f"{log_file}")


def wait_stopped(timeout: float, pid: int = 0) -> bool:
    """Wait until the daemon is gone: its process `pid` exits (waited on with a pidfd, no
    polling), or without a pid its socket disappears (it removes it on exit)."""
    pidfd = _daemon_pidfd(pid) if pid else None
    if pidfd is not None:
        try:
            readable, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        return bool(readable)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not paths.socket_path().exists():
            return True
        time.sleep(0.05)
    return False


def _daemon_pidfd(pid: int) -> int | None:
    """A pidfd of the daemon `pid`, or None: it is gone, there is no pidfd, or `pid` is
    not a tp daemon here (the daemon may live in another PID namespace)."""
    try:
        if b"tp_daemon" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        return os.pidfd_open(pid)
    except OSError:
        return None
