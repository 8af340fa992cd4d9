"""Runs tutorial 4 in JupyterLab with headless Chromium, inside a sandbox laptop.

    python tp_nb_browser.py NOTEBOOK_DIR SCREENSHOT      (run by test_browser.py)

With jupyterlab_testing.main: opens 04_traffic_analysis.ipynb, runs every cell above the
clean-up cells, sends one request of its own through the cluster Service and waits until
the live traffic table shows that request's row. Then it runs the clean-up cells (leave,
uninstall, quit), saves a screenshot and prints one line `RESULT {json}`.
"""

from __future__ import annotations

import secrets
import urllib.request
from pathlib import Path
from typing import Any

from jupyterlab_testing import SERVICE, main, open_notebook, run_above_cleanup, run_cleanup

NOTEBOOK = "04_traffic_analysis.ipynb"


def _drive(page: Any, url: str, shot: Path, result: dict[str, Any]) -> None:
    open_notebook(page, url)
    cleanup = run_above_cleanup(page)
    # outputs, not the cells' source (which contains the same words)
    page.locator(".jp-OutputArea-output").filter(has_text="404 cluster").wait_for(
        timeout=150_000)
    rows = page.locator("table.tp-traffic-live tr.tp-row")
    result["rows_before"] = rows.count()
    result["failed_rows_highlighted"] = page.locator(
        "table.tp-traffic-live tr.tp-row[style*='background']").count()
    path = f"/browser-{secrets.token_hex(4)}"
    req = urllib.request.Request(SERVICE + path, headers={"x-dev": "me"})
    with urllib.request.urlopen(req, timeout=10) as r:   # the fixed handler answers
        result["status"] = r.status
    new_row = page.locator("table.tp-traffic-live tr.tp-row").filter(has_text=path)
    new_row.wait_for(timeout=30_000)
    result["new_row"] = new_row.inner_text()
    result["rows_after"] = rows.count()
    new_row.scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=True)   # the panel with the new row
    result["screenshot"] = True
    run_cleanup(page, cleanup, result)


if __name__ == "__main__":
    main(NOTEBOOK, _drive)
