"""`tp daemon status --format`, and the root daemon's systemd unit passes `systemd-analyze
verify` (no systemd is booted: verify only parses the unit and checks its commands)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is missing "
                                "(Debian package `systemd`)")


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_unit_tp_daemon_install_writes_verifies_without_a_warning(tmp_path: Path) -> None:
    from tp_daemon.root import paths, service

    unit = tmp_path / paths.SYSTEMD_UNIT.name
    unit.write_text(service.unit_text("tp-jupyter"), encoding="utf-8")
    proc = _verify(unit)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""


def test_verify_catches_what_a_broken_unit_would_get_wrong(tmp_path: Path) -> None:
    """The check bites: an unknown restart rule and a command that does not exist."""
    from tp_daemon.root import paths, service

    unit = tmp_path / paths.SYSTEMD_UNIT.name
    text = service.unit_text("tp-jupyter").replace("Restart=on-failure", "Restart=sometimes")
    unit.write_text(text.replace(f"ExecStart={sys.executable}",
                                 "ExecStart=/nonexistent/python"), encoding="utf-8")
    proc = _verify(unit)
    assert proc.returncode != 0
    assert "restart specifier" in proc.stderr and "/nonexistent/python" in proc.stderr


def test_daemon_status_takes_format_json_and_yaml_and_keeps_json_as_an_alias() -> None:
    import json

    import yaml

    run = [sys.executable, "-m", "tp_jupyter.cli", "daemon", "status"]
    as_json = subprocess.run([*run, "--format", "json"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    data = json.loads(as_json)
    assert {"installed", "running", "group", "socket", "log_file", "leases"} <= set(data)
    as_yaml = subprocess.run([*run, "--format=yaml"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    alias = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert yaml.safe_load(as_yaml) == json.loads(alias) == data
    text = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True).stdout
    assert text.startswith("Root daemon: ")
    helptext = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    assert "--format" in helptext and "--json" not in helptext
