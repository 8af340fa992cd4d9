"""Tutorial 4 in a real browser: JupyterLab + headless Chromium (Playwright), in a laptop.

The driver (tp_nb_browser.py) runs inside laptop 1 -- JupyterLab, its kernels and the
browser all live in the laptop's network namespace, like on a developer's machine. It
opens the tutorial itself (a copy of notebooks/04_traffic_analysis.ipynb, so autosave
never rewrites the repository), runs it up to its clean-up cells, sends a request through
the cluster and checks that the live traffic table shows the new row; then it runs the
clean-up cells. The screenshot is saved as test-artifacts/notebook-panel.png.
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
DRIVER = Path(__file__).resolve().parents[1] / "tp_nb_browser.py"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None
                       or importlib.util.find_spec("jupyterlab") is None,
                       reason="needs the test extras jupyterlab and playwright"),
]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short folder (the daemon's socket path must fit in 108 bytes) with the tutorial."""
    path = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    shutil.copy(ROOT / "notebooks" / "04_traffic_analysis.ipynb", path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_tutorials_live_traffic_table_shows_a_new_row_in_jupyterlab(
        sandbox: Any, laptop: Any, workdir: Path) -> None:
    if not sandbox.has_node:
        pytest.skip("the tutorial needs the sandbox node (pods)")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace="telepresence-demo", progress=lambda _: None)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "notebook-panel.png"
    shot.unlink(missing_ok=True)
    lap = laptop(1)
    env = {"HOME": str(workdir), "PYTHONPATH": os.pathsep.join(sys.path)}
    fresh = ["env", "-u", "TP_HOME"]   # the laptop's own daemon home, under $HOME
    try:
        run = lap.run([*fresh, sys.executable, str(DRIVER), str(workdir), str(shot)],
                      timeout=360, env=env)
    finally:
        lap.run([*fresh, sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(line[len("RESULT "):])
    assert result["rows_before"] >= 10          # the tutorial's own requests
    assert result["failed_rows_highlighted"] >= 2   # its /broken calls, in red
    assert result["status"] == 200
    assert "GET" in result["new_row"] and "200" in result["new_row"]
    assert "local" in result["new_row"]
    assert result["cleaned_up"]
    assert shot.stat().st_size > 0
