"""The panel in a real browser: JupyterLab + headless Chromium driven by Playwright.

A notebook that loads the extension, shows `tp_jupyter.panel()` and serves a cell handler
is run in JupyterLab; the test then sends a request to the handler and waits until the
live traffic table in the page shows the new row. A screenshot is saved under
test-artifacts/ either way. Needs Debian's `chromium`, `jupyterlab` and `playwright`
(the PyPI package only: the browser is /usr/bin/chromium, never `playwright install`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None
                       or importlib.util.find_spec("jupyterlab") is None,
                       reason="needs the test extras jupyterlab and playwright"),
]

CELLS = [
    "%load_ext tp_jupyter\nimport tp_jupyter\nfrom tp_jupyter import handlers",
    "panel = tp_jupyter.panel()\npanel",
    # a handler that fails: its row (with the traceback) reaches the panel without a cluster
    "def color(request):\n    raise RuntimeError('no color yet')\n\n"
    "server = handlers.HandlerServer(color, 'browser-demo')\nprint(f'PORT={server.port}')",
]


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": [], "source": src} for i, src in enumerate(CELLS)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                                      "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on loopback; yields the notebook's URL (with the token)."""
    _notebook(tmp_path / "panel.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "TP_HOME": str(tmp_path / "tp")}
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                       timeout=2).read()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start: "
                                + (tmp_path / "lab.log").read_text()[-2000:])
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/lab/tree/panel.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_the_live_traffic_table_shows_a_new_row_in_jupyterlab(jupyterlab: str,
                                                               tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "notebook-panel.png"
    with sync_playwright() as pw:
        # a fresh profile: Playwright takes --user-data-dir as launch_persistent_context's arg
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            try:
                page.goto(jupyterlab)
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                # a notebook without a kernel yet asks which one: take the default
                # a notebook without a kernel may ask which one (timing): take the default
                select = page.get_by_role("button", name="Select", exact=True)
                idle = page.get_by_text("Python 3 (ipykernel) | Idle")
                deadline = time.monotonic() + 60
                while not idle.is_visible():
                    if select.is_visible():
                        select.click()
                    assert time.monotonic() < deadline, "the kernel did not start"
                    page.wait_for_timeout(200)
                page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
                page.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=10_000)
                page.wait_for_selector("table.tp-traffic-live", timeout=60_000)
                port_text = page.wait_for_selector("text=/PORT=\\d+/", timeout=60_000)
                assert port_text is not None
                m = re.search(r"PORT=(\d+)", port_text.inner_text())
                assert m, "the handler cell printed no port"
                assert page.locator("table.tp-traffic-live tr.tp-row").count() == 0
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/browser-check",
                                           timeout=10)
                assert err.value.code == 500
                page.wait_for_selector("table.tp-traffic-live tr.tp-row", timeout=30_000)
                row = page.locator("table.tp-traffic-live tr.tp-row").first.inner_text()
                assert "/browser-check" in row and "500" in row
            finally:
                page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 0
