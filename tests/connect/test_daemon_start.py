"""Starting the daemon fast: readiness on an inherited pipe, heavy imports off the start path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tp_daemon.preload import Preload
from waiting import wait_for

from tp_jupyter import daemon_client
from tp_jupyter.errors import DaemonError

pytestmark = pytest.mark.timeout(60)

HEAVY = ("kubernetes", "aiohttp", "pyroute2", "tp_daemon.session")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private daemon folder; any daemon started in it is asked to quit afterwards."""
    monkeypatch.setenv("TP_HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    yield tmp_path
    if daemon_client.running():
        with daemon_client.DaemonClient() as client:
            client.quit()
        daemon_client.wait_stopped(10)


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_the_daemon_entry_point_imports_nothing_heavy() -> None:
    loaded = _modules_after("import tp_daemon.__main__")
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY] == []


def test_the_connect_path_lists_manager_pods_without_the_clients_api_models() -> None:
    # CoreV1Api's import builds ~250 pydantic models; connect must not pay for it.
    loaded = _modules_after("import tp_daemon.session")
    assert "kubernetes.client.api.core_v1_api" not in loaded
    assert "kubernetes.client.models.v1_pod" not in loaded


def test_start_daemon_returns_once_the_daemon_answers(home: Path) -> None:
    started = time.monotonic()
    daemon_client.start_daemon()
    took = time.monotonic() - started
    with daemon_client.DaemonClient() as client:
        assert client.version(timeout=2).name == "tp-daemon"
    assert took < 10, f"start took {took:.1f} s"


def test_status_waits_for_the_connect_path_imports_then_answers(home: Path) -> None:
    daemon_client.start_daemon()
    with daemon_client.DaemonClient() as client:
        status = client.status()
    assert not status.connected and status.daemon.pid > 0
    log = (home / "daemon.log").read_text()
    assert "tp-preload: imported tp_daemon.session" in log


def test_a_daemon_that_dies_at_start_is_reported_at_once_not_after_the_timeout(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TP_LOG_LEVEL", "NOT-A-LEVEL")  # logging setup fails before serving
    started = time.monotonic()
    with pytest.raises(DaemonError, match=r"the tp daemon exited at start \(status 1\); see "):
        daemon_client.start_daemon()
    assert time.monotonic() - started < 10
    assert not (home / "daemon.sock").exists()


def test_a_second_start_uses_the_daemon_that_already_answers(home: Path) -> None:
    daemon_client.start_daemon()
    with daemon_client.DaemonClient() as client:
        first = client.version(timeout=2).pid
    daemon_client.start_daemon()  # this one exits at once: the socket is taken
    with daemon_client.DaemonClient() as client:
        assert client.version(timeout=2).pid == first


def test_the_ready_pipe_is_not_left_open_in_the_daemon(home: Path) -> None:
    """The daemon closes the write end it inherited once it said "ready" (its event loop
    may hold pipes of its own: only the ready pipe's inode counts)."""
    from tp_jupyter import daemon_spawn

    proc, read_end = daemon_spawn.spawn()
    try:
        ready_pipe = f"pipe:[{os.fstat(read_end).st_ino}]"
        with os.fdopen(read_end, "rb", closefd=False) as ready:
            assert ready.readline() == b"ready\n"

        def held() -> list[str]:
            found = []
            for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
                try:  # the daemon is alive and busy: an fd may close while we look
                    found.append(os.readlink(fd))
                except FileNotFoundError:
                    continue
            return [target for target in found if target == ready_pipe]

        wait_for(lambda: not held(), 5, "the daemon to close its ready pipe")
        assert os.read(read_end, 1) == b""   # EOF: no process holds the write end
    finally:
        os.close(read_end)


async def test_a_failed_preload_is_raised_to_whoever_waits_for_it() -> None:
    preload = Preload(["tp_daemon.no_such_module"], "tp-test-preload").start()
    with pytest.raises(ModuleNotFoundError):
        await preload.wait()


def test_quit_waits_for_the_daemon_process_to_end(home: Path) -> None:
    from tp_jupyter import api

    daemon_client.start_daemon()
    with daemon_client.DaemonClient() as client:
        pid = client.version(timeout=2).pid
    result = api.quit()
    assert result.was_running and not result.was_connected
    assert not Path(f"/proc/{pid}").exists() or b"tp_daemon" not in Path(
        f"/proc/{pid}/cmdline").read_bytes()
    assert not (home / "daemon.sock").exists()
