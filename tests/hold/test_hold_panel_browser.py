"""Tutorial 6's hold panel in a real browser: JupyterLab + headless Chromium (Playwright)
in laptop 1 (driver: tests/tp_nb_hold_browser.py). A request held by the tutorial's
intercept is forwarded by clicking the panel's **Forward local** button; its caller gets
the cell handler's answer. The screenshot is kept as test-artifacts/hold-panel.png.
Needs Debian's `chromium`, `jupyterlab` and `playwright` (the PyPI package only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
DRIVER = Path(__file__).resolve().parents[1] / "tp_nb_hold_browser.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.timeout(500),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None
                       or importlib.util.find_spec("jupyterlab") is None,
                       reason="needs the test extras jupyterlab and playwright"),
]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short folder (the daemon's socket path must fit in 108 bytes) with the tutorial."""
    path = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    shutil.copy(ROOT / "notebooks" / "06_hold_and_edit.ipynb", path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_clicking_forward_local_in_the_hold_panel_answers_the_waiting_caller(
        sandbox: Any, laptop: Any, workdir: Path) -> None:
    if not sandbox.has_node:
        pytest.skip("the tutorial needs the sandbox node (pods)")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace="telepresence-demo", progress=lambda _: None)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "hold-panel.png"
    shot.unlink(missing_ok=True)
    lap = laptop(1)
    env = {"HOME": str(workdir), "PYTHONPATH": os.pathsep.join(sys.path)}
    fresh = ["env", "-u", "TP_HOME"]   # the laptop's own daemon home, under $HOME
    try:
        run = lap.run([*fresh, sys.executable, str(DRIVER), str(workdir), str(shot)],
                      timeout=460, env=env)
    finally:
        lap.run([*fresh, sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(line[len("RESULT "):])
    assert "error" not in result, result
    assert result["waiting_before_click"]          # held until the click
    assert "GET" in result["held_row"]
    assert result["status"] == 200
    assert json.loads(result["body"])["color"] == "blue"   # the cell handler answered
    assert "forwarded to local: its caller got 200" in result["outcome"]
    assert result["cleaned_up"]
    assert shot.stat().st_size > 0
