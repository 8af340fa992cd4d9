"""Bad input to `tp connect`: a one-line error, exit status 1, and no daemon left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)


def _tp(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TP_HOME": str(home)}
    env.pop("KUBECONFIG", None)
    return subprocess.run([sys.executable, "-m", "tp_jupyter.cli", *args], env=env,
                          capture_output=True, text=True, timeout=50, check=False)


def _kubeconfig(path: Path, server: str) -> Path:
    name = "only"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server,
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": name, "user": {"token": "x"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }))
    return path


def _assert_one_line_error_and_nothing_left(proc: subprocess.CompletedProcess[str],
                                            home: Path, expected: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("loading")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tp: ") and expected in lines[0], lines[0]
    assert not (home / "daemon.sock").exists()
    assert not (home / "daemon.pid").exists()


def test_a_missing_kubeconfig_says_how_to_pass_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = _tp(tmp_path, "connect", "--kubeconfig", str(missing))
    _assert_one_line_error_and_nothing_left(
        proc, tmp_path, f"no kubeconfig at {missing}; pass --kubeconfig FILE or set KUBECONFIG")


def test_an_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path / "kc.yaml", "https://127.0.0.1:1")
    proc = _tp(tmp_path, "connect", "--kubeconfig", str(config), "--context", "elsewhere")
    _assert_one_line_error_and_nothing_left(
        proc, tmp_path, f"context 'elsewhere' is not in kubeconfig {config}; pass one of: only")


def test_an_unreachable_api_server_is_named_in_the_error(tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path / "kc.yaml", "https://127.0.0.1:1")
    proc = _tp(tmp_path, "connect", "--kubeconfig", str(config))
    _assert_one_line_error_and_nothing_left(
        proc, tmp_path, "cannot reach the API server at https://127.0.0.1:1")


def test_status_and_quit_without_a_daemon_say_so(tmp_path: Path) -> None:
    status = _tp(tmp_path, "status")
    assert status.returncode == 0 and status.stdout.strip() == "Daemon: not running"
    quit_ = _tp(tmp_path, "quit")
    assert quit_.returncode == 0 and quit_.stdout.strip() == "tp daemon is not running"
