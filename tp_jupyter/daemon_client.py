"""The front's gRPC client of the workstation daemon (Unix socket), every call bounded.

Also starts the daemon (`python -m tp_daemon`, detached, logging to its file) when
`tp connect` finds none, and waits for it to answer.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from tp_daemon import paths
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import daemon_pb2_grpc as dgrpc
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
    """Start `python -m tp_daemon` detached and wait until it answers."""
    log_file = paths.log_path()
    argv = [sys.executable, "-m", "tp_daemon"] + (["--proxy-mode"] if proxy_mode else [])
    with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + get_settings().connect.daemon_start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(f"the tp daemon exited at start (status {proc.returncode}); "
                              f"see {log_file}")
        if running():
            return
        time.sleep(0.05)
    # Leave nothing behind: a daemon that answers too late would linger unconnected.
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    raise DaemonError(f"the tp daemon did not answer within "
                      f"{get_settings().connect.daemon_start_timeout:.0f} s; see {log_file}")


def wait_stopped(timeout: float) -> bool:
    """Wait until the daemon's socket is gone (it removes it on exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not paths.socket_path().exists():
            return True
        time.sleep(0.05)
    return False
