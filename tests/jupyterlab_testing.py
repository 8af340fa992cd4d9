"""A tutorial driven in JupyterLab with headless Chromium (Playwright), inside a laptop.

Two halves, one per side of the laptop boundary:
- pytest side: `BROWSER_MARKS`, `tutorial_copy` and `run_driver`, which runs a driver
  script in laptop 1 against the demo app and returns its `RESULT {json}` line;
- driver side (tests/tp_nb_*browser.py, run by `run_driver`): `main(notebook, drive)`
  starts JupyterLab on the laptop's loopback, opens the notebook in Chromium, calls
  `drive(page, url, screenshot, result)` and prints that line; `open_notebook`,
  `run_above_cleanup` and `run_cleanup` are the steps every tutorial takes.
The browser is Debian's chromium (never `playwright install`); needs the test extras
`jupyterlab` and `playwright` (the PyPI package only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_MARKS = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None
                       or importlib.util.find_spec("jupyterlab") is None,
                       reason="needs the test extras jupyterlab and playwright"),
]
"""pytestmark of a browser test (plus its own timeout)."""

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVICE = "http://dataprocessingservice.telepresence-demo:3000"

Drive = Callable[[Any, str, Path, dict[str, Any]], None]


# --- pytest side ---------------------------------------------------------------------

@contextmanager
def tutorial_copy(notebook: str) -> Iterator[Path]:
    """A short folder (the daemon's socket path must fit in 108 bytes) with a copy of
    notebooks/NOTEBOOK, so autosave never rewrites the repository."""
    path = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    shutil.copy(ROOT / "notebooks" / notebook, path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_driver(sandbox: Any, laptop: Any, driver: str, workdir: Path, *, screenshot: str,
               timeout: float) -> tuple[dict[str, Any], Path]:
    """Deploy the demo app, run tests/DRIVER in laptop 1 on `workdir`, quit its daemon;
    (the driver's RESULT, the screenshot's path under test-artifacts/)."""
    if not sandbox.has_node:
        pytest.skip("the tutorial needs the sandbox node (pods)")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace="telepresence-demo", progress=lambda _: None)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot
    shot.unlink(missing_ok=True)
    lap = laptop(1)
    env = {"HOME": str(workdir), "PYTHONPATH": os.pathsep.join(sys.path)}
    fresh = ["env", "-u", "TP_HOME"]   # the laptop's own daemon home, under $HOME
    script = Path(__file__).resolve().parent / driver
    try:
        run = lap.run([*fresh, sys.executable, str(script), str(workdir), str(shot)],
                      timeout=timeout, env=env)
    finally:
        lap.run([*fresh, sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, run.stdout[-3000:] + run.stderr[-5000:]
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    assert "error" not in result, result
    return result, shot


# --- driver side (inside the laptop) -------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_lab(root: Path, notebook: str) -> tuple[subprocess.Popen[bytes], str]:
    """JupyterLab on loopback with `root` as its folder; (process, the notebook's URL)."""
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


def run_menu(page: Any, item: str) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
    page.click(f".lm-Menu-itemLabel:text-is('{item}')", timeout=10_000)


def open_notebook(page: Any, url: str) -> None:
    """Open the notebook and wait until its kernel is idle."""
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


def run_above_cleanup(page: Any) -> Any:
    """Run every cell above the clean-up cell (the one closing the panel); its locator."""
    cleanup = page.locator(".jp-CodeCell").filter(has_text="panel.close()")
    cleanup.locator(".jp-InputPrompt").click()
    run_menu(page, "Run All Above Selected Cell")
    return cleanup


def run_cleanup(page: Any, cleanup: Any, result: dict[str, Any]) -> None:
    """Run the clean-up cells (leave, uninstall, quit) and wait for the daemon to stop."""
    cleanup.locator(".jp-InputPrompt").click()
    run_menu(page, "Run Selected Cell and All Below")
    page.locator(".jp-OutputArea-output").filter(
        has_text="Disconnected; tp daemon stopped").wait_for(timeout=150_000)
    result["cleaned_up"] = True


def main(notebook: str, drive: Drive) -> None:
    """`python DRIVER NOTEBOOK_DIR SCREENSHOT`: `drive` the notebook in JupyterLab, print
    `RESULT {json}` (with "error" if it raised; the screenshot then shows where)."""
    from playwright.sync_api import sync_playwright

    root, shot = Path(sys.argv[1]), Path(sys.argv[2])
    proc, url = start_lab(root, notebook)
    result: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(root / ".chromium"), executable_path="/usr/bin/chromium", headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            try:
                page = browser.new_page()
                try:
                    drive(page, url, shot, result)
                except Exception as e:   # reported in RESULT
                    result["error"] = f"{type(e).__name__}: {e}"
                finally:
                    if not result.get("screenshot"):   # what the page showed
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
