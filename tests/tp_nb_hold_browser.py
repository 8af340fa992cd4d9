"""Drives tutorial 6's hold panel in JupyterLab with headless Chromium, inside a laptop.

    python tp_nb_hold_browser.py NOTEBOOK_DIR SCREENSHOT    (run by tests/hold)

With jupyterlab_testing.main: opens 06_hold_and_edit.ipynb, runs every cell above the
clean-up cell (the last one shows the panel, with holding on), then sends one request of
its own through the cluster Service in a thread: it is held. The driver waits for its row
in the panel's "Held requests", clicks **Forward local**, and checks what the caller got
and what the panel says. Then the screenshot, the clean-up cells, and one line
`RESULT {json}`.
"""

from __future__ import annotations

import secrets
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jupyterlab_testing import SERVICE, main, open_notebook, run_above_cleanup, run_cleanup

NOTEBOOK = "06_hold_and_edit.ipynb"


def _call(path: str, answer: dict[str, Any]) -> None:
    req = urllib.request.Request(SERVICE + path, headers={"x-dev": "me"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            answer.update(status=r.status, body=r.read().decode().strip())
    except urllib.error.HTTPError as e:
        answer.update(status=e.code, body=e.read().decode().strip())
    except OSError as e:
        answer.update(status=0, body=str(e))


def _drive(page: Any, url: str, shot: Path, result: dict[str, Any]) -> None:
    open_notebook(page, url)
    cleanup = run_above_cleanup(page)
    page.locator(".tp-held-section").wait_for(timeout=200_000)
    result["panel"] = True
    path = f"/color?browser={secrets.token_hex(4)}"
    answer: dict[str, Any] = {}
    caller = threading.Thread(target=_call, args=(path, answer), name="held-caller")
    caller.start()
    row = page.locator(".tp-held-row").filter(has_text=path)
    row.wait_for(timeout=30_000)
    result["held_row"] = row.inner_text()
    result["waiting_before_click"] = caller.is_alive()
    row.locator(".tp-held-forward-local").click()
    caller.join(60)
    result["status"], result["body"] = answer.get("status"), answer.get("body")
    outcome = page.locator(".tp-held-outcome")
    outcome.wait_for(timeout=30_000)
    result["outcome"] = outcome.inner_text()
    page.locator(".tp-held-section").scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=True)   # the panel after the click
    result["screenshot"] = True
    run_cleanup(page, cleanup, result)


if __name__ == "__main__":
    main(NOTEBOOK, _drive)
