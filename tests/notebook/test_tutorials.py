"""The tutorial notebooks pass under `pytest --nbval` inside a sandbox laptop.

The whole nbval run (and so every kernel) is a process in laptop 1's network namespace,
with the demo app deployed in `telepresence-demo`; notebook 3 plays the second developer
on laptop 2 through `tp sandbox exec --laptop 2`. Outputs are compared after the
replacements of notebooks/nbval_sanitize.cfg (times, durations, ports, mount points,
cluster IPs, column padding), so colors, status codes, row counts and intercept blocks
are checked, not just executed.

`TP_NB_RECORD=1` first executes the notebooks in place inside the laptop (nbconvert) to
record fresh outputs -- review the diff before committing it; `TP_NB_RECORD=05` records only
the notebooks whose file name contains `05`, and `TP_NB_ONLY=05` runs only those under
nbval. `TP_NB_KEEP=1` keeps the notebooks' $HOME (/tmp/tpnb-*, with both daemons' logs)
for a post-mortem.

The notebooks expect the demo as `tp sandbox demo` leaves it (no traffic-agent yet);
notebook 4 ends by uninstalling the agent, so consecutive runs see the same state.

$TP_HOME is removed from the notebooks' environment: each laptop then has its own daemon
home (per network namespace, under the test's $HOME), as two real laptops would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMESPACE = "telepresence-demo"

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def demo(sandbox: Any) -> str:
    if not sandbox.has_node:
        pytest.skip("the tutorials need the sandbox node (pods)")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace=NAMESPACE)
    return NAMESPACE


def _stop_leftovers(lap: Any) -> None:
    """After a failed run: stop Bob's local app (a process in laptop 2 started by notebook 3)."""
    pids = subprocess.run(["ip", "netns", "pids", lap.netns], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"tp_sandbox.demo.dataprocessingservice" in cmdline:
                os.kill(int(pid), signal.SIGTERM)


@pytest.fixture
def short_home() -> Iterator[Path]:
    """$HOME for the notebooks: short, as the daemon's socket path must fit in 108 bytes."""
    home = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    try:
        yield home
    finally:
        if not os.environ.get("TP_NB_KEEP"):   # keep the daemon logs for a post-mortem
            shutil.rmtree(home, ignore_errors=True)


def test_the_tutorial_notebooks_pass_nbval_in_a_laptop(demo: str, laptop: Any,
                                                       short_home: Path) -> None:
    alice, bob = laptop(1), laptop(2)
    env = {"HOME": str(short_home), "JUPYTER_RUNTIME_DIR": str(short_home / "rt"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    fresh = ["env", "-u", "TP_HOME"]
    notebooks = sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))
    only = os.environ.get("TP_NB_ONLY", "")   # while writing one notebook: run just it
    notebooks = [n for n in notebooks if only in Path(n).name]
    try:
        # the state notebook 1 shows, also on a reused sandbox where an earlier run failed
        reset = alice.run([*fresh, "sh", "-c", f"tp connect >/dev/null && tp uninstall "
                           f"--all-agents -n {demo} >/dev/null && tp quit >/dev/null"],
                          timeout=240, env=env)
        assert reset.returncode == 0, reset.stderr[-2000:]
        record = os.environ.get("TP_NB_RECORD", "")
        if record:
            chosen = notebooks if record == "1" else [
                n for n in notebooks if record in Path(n).name]
            rec = alice.run([*fresh, sys.executable, "-m", "jupyter", "nbconvert", "--to",
                             "notebook", "--execute", "--inplace",
                             "--ExecutePreprocessor.timeout=180", *chosen],
                            timeout=500, env=env)
            assert rec.returncode == 0, rec.stdout[-3000:] + rec.stderr[-3000:]
        result = alice.run([*fresh, sys.executable, "-m", "pytest", "--nbval",
                            "-p", "no:cacheprovider",
                            "--nbval-sanitize-with", str(NOTEBOOKS / "nbval_sanitize.cfg"),
                            "--nbval-cell-timeout=180", "-q", "-o", "addopts=", "--rootdir",
                            str(NOTEBOOKS), *notebooks], timeout=500, env=env)
    finally:   # the daemons the notebooks started must not outlive the test
        for lap in (alice, bob):
            lap.run([*fresh, sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60,
                    env=env)
        _stop_leftovers(bob)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    if any("07_" in Path(n).name for n in notebooks):
        _check_tutorial_har(short_home / "tutorial-07" / "books.har")


def _check_tutorial_har(path: Path) -> None:
    """The HAR tutorial 7 wrote reads back with read_har and with mitmproxy's own reader."""
    from mitmproxy_har_reader import read_with_mitmproxy

    import tp_jupyter

    df = tp_jupyter.read_har(path)
    assert list(df["status"]) == [201, 201, 201, 200, 503, 404]
    assert set(df["intercept"]) == {"books"} and set(df["captured_by"]) == {"har"}
    flows = read_with_mitmproxy(path)
    assert [(f["method"], f["url"].rsplit(":3000", 1)[1], f["status"]) for f in flows] == [
        ("POST", "/books", 201), ("POST", "/books", 201), ("POST", "/books", 201),
        ("GET", "/books", 200), ("GET", "/shelf", 503), ("GET", "/nope", 404)]
    assert [json.loads(f["request_body"])["title"] for f in flows[:3]] == ["Dune", "Emma",
                                                                          "Beloved"]
