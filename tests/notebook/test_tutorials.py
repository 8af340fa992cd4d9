"""The tutorial notebooks pass under `pytest --nbval` inside a sandbox laptop.

The whole pytest process (and so every kernel) runs in laptop 1's network namespace,
with the demo app deployed in `telepresence-demo`; outputs are compared after the
replacements of notebooks/nbval_sanitize.cfg (times, ports, ids), so they are checked,
not just executed. `TP_NB_RECORD=1` first executes the notebooks in place inside the
laptop (nbconvert) to record fresh outputs -- review the diff before committing it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(900)]


def _has_intercepts() -> bool:
    from tp_jupyter import magics

    sub = magics._subparsers(magics.build_parser())
    return {"intercept", "leave", "list"} <= set(sub.choices)


@pytest.fixture(scope="module")
def demo(sandbox: Any) -> str:
    if not sandbox.has_node:
        pytest.skip("the tutorials need the sandbox node (pods)")
    if not _has_intercepts():
        pytest.skip("`tp intercept/leave/list` are not in the CLI yet")
    from tp_sandbox import lifecycle

    lifecycle.demo(sandbox.instance, namespace="telepresence-demo")
    return "telepresence-demo"


def test_the_tutorial_notebooks_pass_nbval_in_a_laptop(demo: str, laptop: Any,
                                                       tmp_path: Path) -> None:
    lap = laptop(1)
    env = {"HOME": str(tmp_path), "TP_HOME": str(tmp_path / "tp"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "KUBECONFIG": str(lap.kubeconfig),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    notebooks = sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))
    try:
        if os.environ.get("TP_NB_RECORD") == "1":
            rec = lap.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                           "--execute", "--inplace", "--ExecutePreprocessor.timeout=120",
                           *notebooks], timeout=600, env=env)
            assert rec.returncode == 0, rec.stdout[-3000:] + rec.stderr[-3000:]
        result = lap.run([sys.executable, "-m", "pytest", "--nbval", "-p", "no:cacheprovider",
                          "--nbval-sanitize-with", str(NOTEBOOKS / "nbval_sanitize.cfg"),
                          "--nbval-cell-timeout=120", "-q", "-o", "addopts=", "--rootdir",
                          str(NOTEBOOKS), *notebooks], timeout=800, env=env)
    finally:   # the daemon the notebooks started must not outlive the test
        lap.run([sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
