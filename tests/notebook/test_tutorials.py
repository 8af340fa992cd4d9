"""The tutorial notebooks pass under `pytest --nbval`, run by a normal user in a laptop.

As on a workstation set up once by its admin: root installs the root daemon service in
laptop 1 (`tp daemon install --group G`), then a non-root member of G runs nbval on every
`notebooks/*.ipynb` -- so every kernel, and every tp daemon the notebooks start, runs as
that user (no root anywhere in them) and gets full routing and DNS from the service. The
user's KUBECONFIG is laptop 1's own (alice, a developer with ClusterRole `edit`), and
`~/.kube/bob` is bob's, which notebook 3 uses for Bob's terminal (a second daemon of the
same user, in proxy mode). Users come from `nonroot_testing`; their $HOME is a short
/tmp/tpnb-* (the daemon's socket path must fit in 108 bytes; nbval_sanitize.cfg hides it).

Outputs are compared after the replacements of notebooks/nbval_sanitize.cfg (times,
durations, ports, mount points, cluster IPs, client names, column padding), so colors,
status codes, row counts and intercept blocks are checked, not just executed.

`TP_NB_RECORD=1` first executes the notebooks (as that user, in a copy the user owns) to
record fresh outputs, written back in place -- review the diff before committing it;
`TP_NB_RECORD=05` records only the notebooks whose file name contains `05`, and
`TP_NB_ONLY=05` runs only those under nbval. `TP_NB_KEEP=1`
keeps the user's $HOME (both daemons' logs) for a post-mortem.

The notebooks expect the demo as `tp sandbox demo` leaves it (no traffic-agent yet);
notebook 4 ends by uninstalling the agent, so consecutive runs see the same state.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nonroot_testing import User, group_exists, user_python
from sandbox_testing import Laptop

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMESPACE = "telepresence-demo"
ROOT_TP = f"{sys.executable} -m tp_jupyter.cli"
TAG = secrets.token_hex(3)
GROUP = f"tpnb{TAG}"
BOB_TP_HOME = ".cache/tp-jupyter-bob"  # notebook 3's second daemon (Bob's terminal)

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demo(sandbox: Any) -> str:
    if not sandbox.has_node:
        pytest.skip("the tutorials need the sandbox node (pods)")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace=NAMESPACE)
    return NAMESPACE


@pytest.fixture(scope="module")
def member(sandbox: Any) -> Iterator[tuple[User, Laptop]]:
    """A non-root user in the service's group, in laptop 1 where root installed it."""
    lap = Laptop(sandbox, 1)
    home = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    with user_python(sandbox, Path(f"/tmp/tpnbpy-{TAG}")) as python:
        user = User(f"tpnb{TAG}", python, home=home)
        try:
            installed = lap.run(f"{ROOT_TP} daemon install --group {GROUP}", timeout=60)
            assert installed.returncode == 0, installed.stderr
            user.join(GROUP)
            user.give(sandbox.instance.laptop_dir(1) / "kubeconfig-bob", ".kube/bob")
            user.write("bin/tp", f'#!/bin/sh\nexec {python} -m tp_jupyter.cli "$@"\n', 0o755)
            yield user, lap
        finally:
            for tp_home in ("", f"TP_HOME={home / BOB_TP_HOME} "):
                user.run(lap, f"{tp_home}{user.tp} quit", timeout=60)
            lap.run(f"{ROOT_TP} daemon uninstall --force", timeout=60)
            user.remove()  # with every process of the user (Bob's app after a failure)
            if group_exists(GROUP):
                subprocess.run(["groupdel", GROUP], capture_output=True, check=False)
            if not os.environ.get("TP_NB_KEEP"):
                shutil.rmtree(home, ignore_errors=True)


def _record(user: User, lap: Laptop, env: str, notebooks: list[str], record: str) -> None:
    """Execute the chosen notebooks as the user, in a copy it owns, and write them back."""
    chosen = notebooks if record == "1" else [n for n in notebooks if record in Path(n).name]
    work = user.home / "record"
    copies = [user.give(Path(n), f"record/{Path(n).name}") for n in chosen]
    rec = user.run(lap, f"{env} {user.python} -m nbconvert --to notebook --execute "
                        f"--inplace --ExecutePreprocessor.timeout=180 "
                        + " ".join(str(c) for c in copies), timeout=600)
    assert rec.returncode == 0, rec.stdout[-3000:] + rec.stderr[-3000:]
    for copy, original in zip(copies, chosen, strict=True):
        shutil.copyfile(copy, original)
    shutil.rmtree(work, ignore_errors=True)


def test_the_tutorial_notebooks_pass_nbval_as_a_normal_user_with_the_root_daemon(
        demo: str, member: tuple[User, Laptop]) -> None:
    user, lap = member
    env = f"PATH={user.home}/bin:$PATH JUPYTER_RUNTIME_DIR={user.home}/rt"
    notebooks = sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))
    only = os.environ.get("TP_NB_ONLY", "")   # while writing one notebook: run just it
    notebooks = [n for n in notebooks if only in Path(n).name]

    def reset() -> None:
        """The state notebook 1 shows, also on a reused sandbox where an earlier run (or
        a recording of some notebooks only) left agents behind."""
        done = user.run(lap, f"{env} sh -c 'tp connect >/dev/null && tp uninstall "
                             f"--all-agents -n {demo} >/dev/null && tp quit >/dev/null'",
                        timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]

    reset()
    record = os.environ.get("TP_NB_RECORD", "")
    if record:
        _record(user, lap, env, notebooks, record)
        reset()
    # the user's own copies: the checkout may be private (CI's `mktemp -d`, 0700)
    copies = [str(user.give(Path(n), f"notebooks/{Path(n).name}")) for n in notebooks]
    sanitize = user.give(NOTEBOOKS / "nbval_sanitize.cfg", "notebooks/nbval_sanitize.cfg")
    result = user.run(lap, f"{env} {user.python} -m pytest --nbval -p no:cacheprovider "
                           f"--nbval-sanitize-with {sanitize} --nbval-cell-timeout=180 -q "
                           f"-o addopts= --rootdir {sanitize.parent} " + " ".join(copies),
                      timeout=800)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    # every code cell of every notebook ran and compared (nbval: one test per cell)
    cells = sum(c["cell_type"] == "code" for n in notebooks
                for c in json.loads(Path(n).read_text())["cells"])
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped)", result.stdout)}
    assert counts.get("passed", 0) + counts.get("skipped", 0) == cells, (
        cells, result.stdout[-2000:])   # NBVAL_SKIP cells count as skipped
    # the kernels ran as the user and got their routes from the root daemon, not proxy mode
    status = json.loads(lap.run(f"{ROOT_TP} daemon status --format json").stdout)
    log = Path(status["log_file"]).read_text()
    assert f"{user.name} (uid {user.uid}" in log and "asks for routes" in log, log[-2000:]
    if any("07_" in Path(n).name for n in notebooks):
        _check_tutorial_har(user.home / "tutorial-07" / "books.har")


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
