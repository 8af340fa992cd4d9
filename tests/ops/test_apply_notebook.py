"""`%%tp apply` in an IPython shell inside laptop 1 (tests/notebook's `tp_nb_shell`): the
cell is a session file whose intercept names a kernel function as its handler; requests
to the cluster Service reach it; re-running the cell after redefining the function keeps
the intercept and serves the new definition; an unknown handler is refused with its line.
The tests run in order and share the shell."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_output_testing import check

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebook"))
from tp_nb_shell import LaptopShell, ShellError

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

SVC = "dataprocessingservice"


def define(shell: LaptopShell, source: str) -> None:
    """Run `source` in the kernel's namespace (as a plain cell would)."""
    shell.eval(f"exec({source!r}, globals())")


def session(ns: str, handler: str = "color") -> str:
    return (f"name: nb-session\nconnection:\n  namespace: {ns}\nintercepts:\n"
            f"  - name: nb-dps\n    workload: {SVC}\n    mount: false\n"
            f"    handler: {handler}\n")


@pytest.fixture(scope="module")
def shell(lap: Laptop, home: Path, demo: str) -> Iterator[LaptopShell]:
    env = {"HOME": str(home), "TP_HOME": str(home / "tp"), "KUBECONFIG": str(lap.kubeconfig),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    sh = LaptopShell(lap, env)
    try:
        yield sh
    finally:
        sh.close()
        lap.run([sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)


def color(lap: Laptop, ns: str) -> str:
    return lap.run(f"curl -sS --max-time 10 http://{SVC}.{ns}:3000/color").stdout


def test_an_unknown_handler_is_refused_with_its_line_before_anything_changes(
        shell: LaptopShell, demo: str) -> None:
    with pytest.raises(ShellError, match=r"<%%tp apply cell>:5: nb-dps.handler: the kernel "
                                         r"defines no nowhere"):
        shell.cell("apply", session(demo, "nowhere"))
    with pytest.raises(ShellError, match=r":3: connection.namespace: expected a string"):
        shell.cell("apply", "name: nb-session\nconnection:\n  namespace: [1]\n")


def test_the_named_kernel_function_answers_requests_to_the_cluster_service(
        shell: LaptopShell, lap: Laptop, demo: str) -> None:
    define(shell, "def color(request):\n    return {'color': 'blue'}\n")
    out = shell.cell("apply --format json", session(demo))
    doc: dict[str, Any] = check(json.loads(out["text"]), "apply")
    assert doc["created"] == ["nb-dps"] and doc["kept"] == []
    assert [(h["intercept"], h["name"], h["kind"]) for h in doc["handlers"]] == [
        ("nb-dps", "color", "function")]
    assert color(lap, demo) == '{"color": "blue"}'


def test_re_running_the_cell_keeps_the_intercept_and_serves_the_new_definition(
        shell: LaptopShell, lap: Laptop, demo: str) -> None:
    define(shell, "def color(request):\n    return {'color': 'orange'}\n")
    out = shell.cell("apply --format json", session(demo))
    doc = check(json.loads(out["text"]), "apply")
    assert (doc["created"], doc["replaced"], doc["kept"]) == ([], [], ["nb-dps"])
    wait_for(lambda: color(lap, demo) == '{"color": "orange"}', 20, "the new definition")
    text = shell.cell("apply", session(demo))["text"]
    assert "Kept intercept nb-dps" in text and "Serving color (function)" in text


def test_an_applied_cell_without_the_intercept_leaves_it(
        shell: LaptopShell, lap: Laptop, demo: str) -> None:
    out = shell.cell("apply --format json", f"name: nb-session\nconnection:\n"
                                            f"  namespace: {demo}\nintercepts: []\n")
    doc = check(json.loads(out["text"]), "apply")
    assert doc["left"] == ["nb-dps"] and doc["handlers"] == []
    wait_for(lambda: "green" in color(lap, demo), 30, "the cluster's app answering again")
