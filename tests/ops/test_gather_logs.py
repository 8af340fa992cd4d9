"""`tp gather-logs` against the sandbox: the daemon's log, the traffic-manager's and an
agent's (collected through the manager) in one zip with a manifest; the per-component
bound marks what it cut. The tests run in order and share one connection."""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tp_output_testing import check

Tp = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]


def test_without_a_daemon_the_zip_says_the_cluster_logs_were_unreachable(
        tp: Tp, home: Path) -> None:
    target = home / "nodaemon.zip"
    proc = tp("gather-logs", "-o", str(target), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = check(json.loads(proc.stdout), "gather-logs")
    by = {c["component"]: c for c in doc["manifest"]["components"]}
    assert "not running" in by["traffic-manager"]["error"]
    assert "not running" in by["traffic-agent"]["error"]
    with zipfile.ZipFile(target) as zf:
        assert json.loads(zf.read("manifest.json")) == doc["manifest"]


def test_the_zip_holds_the_daemon_manager_and_agent_logs_and_a_manifest(
        tp: Tp, home: Path, demo: str) -> None:
    assert tp("connect").returncode == 0
    proc = tp("intercept", "dataprocessingservice", "-n", demo, "-p", "3811", "--mount",
              "false", "--http-match", "x-logs=1")
    assert proc.returncode == 0, proc.stderr
    target = home / "logs.zip"
    proc = tp("gather-logs", "-o", str(target), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = check(json.loads(proc.stdout), "gather-logs")
    assert doc["file"] == str(target)
    components = doc["manifest"]["components"]
    assert [c["error"] for c in components] == [None] * len(components)
    by = {c["component"]: c for c in components}
    assert by["daemon"]["source"].startswith("file:")
    assert by["traffic-manager"]["source"] == "memory"
    assert by["traffic-manager"]["namespace"] == "ambassador"
    agents = [c for c in components if c["component"] == "traffic-agent"]
    mine = [a for a in agents if a["namespace"] == demo]
    assert [a["workload"] for a in mine] == ["dataprocessingservice"]
    assert mine[0]["source"] == "pods/log" and mine[0]["pod"].startswith(
        "dataprocessingservice-")
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        assert {"manifest.json", "daemon/daemon.log", "traffic-manager/ambassador.log",
                f"traffic-agent/{demo}/{mine[0]['pod']}.log"} <= names
        assert json.loads(zf.read("manifest.json")) == doc["manifest"]
        assert b"intercept dataprocessingservice" in zf.read("daemon/daemon.log")
        assert b"cluster info" in zf.read("traffic-manager/ambassador.log")
        assert zf.read(f"traffic-agent/{demo}/{mine[0]['pod']}.log")
        for c in components:
            assert len(zf.read(c["file"])) == c["bytes"] > 0


def test_each_log_is_bounded_and_the_manifest_says_what_was_cut(
        tp: Tp, home: Path) -> None:
    target = home / "small.zip"
    proc = tp("gather-logs", "-o", str(target), "--max-bytes", "300", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = check(json.loads(proc.stdout), "gather-logs")
    assert doc["manifest"]["max_bytes"] == 300
    for c in doc["manifest"]["components"]:
        assert c["bytes"] <= 300
        assert c["truncated"] == (c["size"] > 300)
    by = {c["component"]: c for c in doc["manifest"]["components"]}
    assert by["daemon"]["truncated"] and by["traffic-manager"]["truncated"]
    text = tp("gather-logs", "-o", str(home / "text.zip")).stdout
    assert text.startswith(f"Wrote {home / 'text.zip'}") and "traffic-agent" in text
    bad = tp("gather-logs", "-o", str(home / "logs.tar"))
    assert bad.returncode == 1 and bad.stderr.strip().endswith("give a FILE.zip")
