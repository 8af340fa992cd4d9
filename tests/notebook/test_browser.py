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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_testing import BROWSER_MARKS, run_driver, tutorial_copy

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(400)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tutorial_copy("04_traffic_analysis.ipynb") as path:
        yield path


def test_the_tutorials_live_traffic_table_shows_a_new_row_in_jupyterlab(
        sandbox: Any, laptop: Any, workdir: Path) -> None:
    result, shot = run_driver(sandbox, laptop, "tp_nb_browser.py", workdir,
                              screenshot="notebook-panel.png", timeout=360)
    assert result["rows_before"] >= 10          # the tutorial's own requests
    assert result["failed_rows_highlighted"] >= 2   # its /broken calls, in red
    assert result["status"] == 200
    assert "GET" in result["new_row"] and "200" in result["new_row"]
    assert "local" in result["new_row"]
    assert result["cleaned_up"]
    assert shot.stat().st_size > 0
