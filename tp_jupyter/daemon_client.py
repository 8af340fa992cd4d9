"""The front's gRPC client of the workstation daemon (Unix socket), every call bounded.

Also starts the daemon (`python -m tp_daemon`, detached, logging to its file) when
`tp connect` finds none, and waits for it to answer.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2
from tp_daemon import paths
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import daemon_pb2_grpc as dgrpc
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter.errors import DaemonError


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

    def _call(self, method: str, request: Any, timeout: float) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            self._call_failed(e, method, timeout)

    def _call_failed(self, e: grpc.RpcError, method: str, timeout: float) -> NoReturn:
        code = e.code() if isinstance(e, grpc.Call) else None
        if code == grpc.StatusCode.UNAVAILABLE:
            raise DaemonError("the tp daemon is not running; run `tp connect`") from e
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DaemonError(f"the tp daemon did not answer {method} within {timeout:.0f} "
                              f"s; see {paths.log_path()}") from e
        details = e.details() if isinstance(e, grpc.Call) else str(e)
        raise DaemonError(f"the tp daemon failed {method}: {details}; see "
                          f"{paths.log_path()}") from e

    def version(self, timeout: float | None = None) -> dpb.VersionInfo:
        t = timeout or get_settings().connect.rpc_timeout
        result: dpb.VersionInfo = self._call("Version", empty_pb2.Empty(), t)
        return result

    def connect(self, request: dpb.ConnectRequest) -> dpb.ConnectInfo:
        s = get_settings().connect
        result: dpb.ConnectInfo = self._call("Connect", request,
                                             s.connect_timeout + s.install_timeout)
        return result

    def status(self) -> dpb.StatusInfo:
        result: dpb.StatusInfo = self._call("Status", empty_pb2.Empty(),
                                            get_settings().connect.rpc_timeout)
        return result

    def quit(self, keep_daemon: bool = False) -> dpb.QuitInfo:
        result: dpb.QuitInfo = self._call("Quit", dpb.QuitRequest(keep_daemon=keep_daemon),
                                          get_settings().connect.quit_timeout)
        return result

    # --- intercepts (each reply carries `error`; the API turns it into a TpError) ---

    def list_workloads(self, request: dpb.ListRequest) -> dpb.WorkloadList:
        result: dpb.WorkloadList = self._call("List", request, _api_timeout())
        return result

    def intercept(self, request: dpb.InterceptRequest) -> dpb.InterceptResult:
        result: dpb.InterceptResult = self._call("Intercept", request, intercept_timeout())
        return result

    def leave(self, name: str) -> dpb.LeaveResult:
        result: dpb.LeaveResult = self._call("Leave", dpb.LeaveRequest(name=name),
                                             get_settings().connect.rpc_timeout * 2)
        return result

    def list_intercepts(self) -> dpb.InterceptList:
        result: dpb.InterceptList = self._call("ListIntercepts", empty_pb2.Empty(),
                                               get_settings().connect.rpc_timeout)
        return result

    def get_env(self, name: str) -> dpb.EnvInfo:
        result: dpb.EnvInfo = self._call("GetEnv", dpb.GetEnvRequest(name=name),
                                         get_settings().connect.rpc_timeout)
        return result

    def uninstall(self, request: dpb.UninstallRequest) -> dpb.UninstallResult:
        s = get_settings()
        timeout = (s.intercept.daemon_uninstall_timeout
                   + s.intercept.daemon_manager_removal_timeout + s.connect.quit_timeout)
        result: dpb.UninstallResult = self._call("Uninstall", request, timeout)
        return result

    def traffic_history(self, names: list[str], include_unmatched: bool = False
                        ) -> list[mpb.TrafficRecord]:
        """The rows the daemon keeps (no live rows)."""
        request = dpb.WatchTrafficRequest(intercept_names=names, history=True, follow=False,
                                          include_unmatched=include_unmatched)
        timeout = get_settings().notebook.traffic_rpc_timeout
        try:
            return list(self._stub.WatchTraffic(request, timeout=timeout))
        except grpc.RpcError as e:
            self._call_failed(e, "WatchTraffic", timeout)
            raise  # unreachable: _call_failed raises

    def replay(self, request: dpb.ReplayRequest) -> dpb.ReplayResult:
        result: dpb.ReplayResult = self._call("Replay", request,
                                              get_settings().notebook.replay_timeout)
        return result

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
            thread.join(timeout=2)


def _api_timeout() -> float:
    s = get_settings().connect
    return s.rpc_timeout + s.api_timeout * 3


def intercept_timeout() -> float:
    """Bound of one Intercept call: create, prepare (beyond the agent's activate_timeout),
    the wait for ACTIVE, the volume copy, and the undo of a failure."""
    s = get_settings()
    i = s.intercept
    return (2 * i.activate_timeout + i.daemon_prepare_margin + i.daemon_mount_timeout
            + i.daemon_uninstall_timeout + 3 * s.connect.rpc_timeout)


def running(socket_path: Path | None = None) -> bool:
    """Whether a daemon answers on the socket."""
    path = socket_path or paths.socket_path()
    if not path.exists():
        return False
    with DaemonClient(path) as client:
        try:
            client.version(timeout=2)
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
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "tp_daemon", "--ready-fd", str(write_end)]
    if proxy_mode:
        argv.append("--proxy-mode")
    try:
        with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True,
                                    pass_fds=(write_end,))
        os.close(write_end)  # only the daemon holds it now: its exit means EOF here
        write_end = -1
        readable, _, _ = select.select([read_end], [], [], timeout)
        line = os.read(read_end, 64) if readable else None
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
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
