"""Tutorial 6's hold panel in a real browser: JupyterLab + headless Chromium (Playwright)
in laptop 1 (driver: tests/tp_nb_hold_browser.py). A request held by the tutorial's
intercept is forwarded by clicking the panel's **Forward local** button; its caller gets
the cell handler's answer. The screenshot is kept as test-artifacts/hold-panel.png.
Needs Debian's `chromium`, `jupyterlab` and `playwright` (the PyPI package only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_testing import BROWSER_MARKS, run_driver, tutorial_copy

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(500)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tutorial_copy("06_hold_and_edit.ipynb") as path:
        yield path


def test_clicking_forward_local_in_the_hold_panel_answers_the_waiting_caller(
        sandbox: Any, laptop: Any, workdir: Path) -> None:
    result, shot = run_driver(sandbox, laptop, "tp_nb_hold_browser.py", workdir,
                              screenshot="hold-panel.png", timeout=460)
    assert result["waiting_before_click"]          # held until the click
    assert "GET" in result["held_row"]
    assert result["status"] == 200
    assert json.loads(result["body"])["color"] == "blue"   # the cell handler answered
    assert "forwarded to local: its caller got 200" in result["outcome"]
    assert result["cleaned_up"]
    assert shot.stat().st_size > 0
