"""Drives tutorial 6's hold panel in JupyterLab with headless Chromium, inside a laptop.

    python tp_nb_hold_browser.py NOTEBOOK_DIR SCREENSHOT    (run by tests/hold)

Starts JupyterLab (tp_nb_browser.start_lab) on a copy of 06_hold_and_edit.ipynb, runs
every cell above the clean-up cell (the last one shows the panel, with holding on), then
sends one request of its own through the cluster Service in a thread: it is held. The
driver waits for its row in the panel's "Held requests", clicks **Forward local**, and
checks what the caller got and what the panel says. Then the screenshot, the clean-up
cells, and one line `RESULT {json}`.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tp_nb_browser import CHROMIUM_ARGS, SERVICE, start_lab

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


def _run_menu(page: Any, item: str) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
    page.click(f".lm-Menu-itemLabel:text-is('{item}')", timeout=10_000)


def _drive(page: Any, url: str, shot: Path, result: dict[str, Any]) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    select = page.get_by_role("button", name="Select", exact=True)
    idle = page.get_by_text("Python 3 (ipykernel) | Idle")
    deadline = time.monotonic() + 60
    while not idle.is_visible():
        if select.is_visible():
            select.click()
        if time.monotonic() > deadline:
            raise AssertionError("the kernel did not start")
        page.wait_for_timeout(200)
    cleanup = page.locator(".jp-CodeCell").filter(has_text="panel.close()")
    cleanup.locator(".jp-InputPrompt").click()
    _run_menu(page, "Run All Above Selected Cell")
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
    cleanup.locator(".jp-InputPrompt").click()
    _run_menu(page, "Run Selected Cell and All Below")
    page.locator(".jp-OutputArea-output").filter(
        has_text="Disconnected; tp daemon stopped").wait_for(timeout=150_000)
    result["cleaned_up"] = True


def main() -> None:
    from playwright.sync_api import sync_playwright

    root, shot = Path(sys.argv[1]), Path(sys.argv[2])
    proc, url = start_lab(root, NOTEBOOK)
    result: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(root / ".chromium"), executable_path="/usr/bin/chromium", headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            try:
                page = browser.new_page()
                try:
                    _drive(page, url, shot, result)
                except Exception as e:   # reported in RESULT; the screenshot shows where
                    result["error"] = f"{type(e).__name__}: {e}"
                finally:
                    if not result.get("screenshot"):
                        page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
