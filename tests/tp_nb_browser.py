"""Runs tutorial 4 in JupyterLab with headless Chromium, inside a sandbox laptop.

    python tp_nb_browser.py NOTEBOOK_DIR SCREENSHOT      (run by test_browser.py)

Starts JupyterLab on the laptop's loopback with NOTEBOOK_DIR as its root (a copy of
notebooks/, so autosave never touches the repository), opens 04_traffic_analysis.ipynb,
runs every cell above the clean-up cells, sends one request of its own through the
cluster Service and waits until the live traffic table shows that request's row. Then it
runs the clean-up cells (leave, uninstall, quit), saves a screenshot and prints one line
`RESULT {json}`. The browser is Debian's chromium (never `playwright install`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

NOTEBOOK = "04_traffic_analysis.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVICE = "http://dataprocessingservice.telepresence-demo:3000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_lab(root: Path, notebook: str = NOTEBOOK) -> tuple[subprocess.Popen[bytes], str]:
    port, token = _free_port(), secrets.token_hex(16)
    settings = root / ".lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the screenshot
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".cfg"),
           "JUPYTER_RUNTIME_DIR": str(root / ".rt"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    log = (root / "lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                   timeout=2).read()
            return proc, f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}"
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("JupyterLab did not start: "
                                 + (root / "lab.log").read_text()[-2000:]) from None
            time.sleep(0.2)


def run_tutorial(url: str, root: Path, shot: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(root / ".chromium"), executable_path="/usr/bin/chromium", headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            try:
                _drive(page, url, shot, result)
            finally:
                if not result.get("screenshot"):   # what the page showed when it failed
                    page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return result


def _run_menu(page: Any, item: str) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
    page.click(f".lm-Menu-itemLabel:text-is('{item}')", timeout=10_000)


def _drive(page: Any, url: str, shot: Path, result: dict[str, Any]) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    select = page.get_by_role("button", name="Select", exact=True)
    idle = page.get_by_text("Python 3 (ipykernel) | Idle")
    deadline = time.monotonic() + 60
    while not idle.is_visible():   # a notebook may ask which kernel (timing): the default
        if select.is_visible():
            select.click()
        if time.monotonic() > deadline:
            raise AssertionError("the kernel did not start")
        page.wait_for_timeout(200)
    # everything above the clean-up cell (leave, uninstall, quit)
    cleanup = page.locator(".jp-CodeCell").filter(has_text="panel.close()")
    cleanup.locator(".jp-InputPrompt").click()
    _run_menu(page, "Run All Above Selected Cell")
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
    # the clean-up cells: leave, uninstall, quit
    cleanup.locator(".jp-InputPrompt").click()
    _run_menu(page, "Run Selected Cell and All Below")
    page.locator(".jp-OutputArea-output").filter(
        has_text="Disconnected; tp daemon stopped").wait_for(timeout=150_000)
    result["cleaned_up"] = True


def main() -> None:
    root, shot = Path(sys.argv[1]), Path(sys.argv[2])
    proc, url = start_lab(root)
    try:
        result = run_tutorial(url, root, shot)
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
