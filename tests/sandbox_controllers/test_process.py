"""The controllers process: clean stop on SIGTERM, one-line errors on bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from controllers_testing import Cluster, wait_for

pytestmark = pytest.mark.timeout(60)


def test_the_controllers_stop_cleanly_on_sigterm(cluster: Cluster) -> None:
    log = cluster.state_dir / "controllers.log"
    before = log.stat().st_size if log.exists() else 0
    # all of them (with their watches open) must stop, and promptly
    proc = cluster.start_controllers()
    try:
        wait_for(lambda: b"started deployment-controller" in log.read_bytes()[before:],
                 what="start")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    tail = log.read_bytes()[before:].decode()
    assert "tp_sandbox.controllers.manager: stopped" in tail
    assert "Traceback" not in tail


def test_a_missing_kubeconfig_is_a_one_line_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tp_sandbox.controllers", "--kubeconfig",
                          str(tmp_path / "nope")], capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --kubeconfig with a valid file" in lines[0]


def test_an_unknown_controller_name_says_which_exist(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tp_sandbox.controllers", "--kubeconfig",
                          str(tmp_path / "k"), "--controllers", "bogus"], capture_output=True,
                         text=True, timeout=30, check=False)
    assert out.returncode == 2 and "choose from deployment" in out.stderr
