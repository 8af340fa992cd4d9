"""The notebook's one owner of state, `NotebookSession`, in plain Python (no IPython shell):
run, intercept_cell, leave, close, and the panel it hands its leave to."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tp_nb_helpers import tp_threads, wait_for
from tp_protocol import manager_pb2 as mpb

from tp_jupyter import handlers
from tp_jupyter.errors import UsageError
from tp_jupyter.session import NotebookSession

pytestmark = pytest.mark.timeout(60)

HANDLER = "def color(request):\n    return {'color': 'blue'}\n"


@pytest.fixture
def session() -> Iterator[NotebookSession]:
    s = NotebookSession()
    yield s
    s.close()


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url + "/color", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_session_runs_subcommands_without_ipython() -> None:
    code = ("import sys\nfrom tp_jupyter.session import NotebookSession\n"
            "s = NotebookSession()\nprint(s.run(['status']))\n"
            "s.run(['traffic', '-o', 'df'])\nprint(len(s.user_ns['df'].columns))\n"
            "s.close()\nprint('IPython' in sys.modules)\n")
    env = {"PATH": "/usr/bin:/bin", "TP_HOME": "/nonexistent-tp-home"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout.splitlines()
    assert out[0] == "Daemon: not running"
    assert int(out[1]) > 7 and out[2] == "False"


def test_run_refuses_a_bad_variable_name_before_running(session: NotebookSession) -> None:
    with pytest.raises(UsageError, match="give a Python variable name"):
        session.run(["traffic", "-o", "not a name"])
    assert "not a name" not in session.user_ns


def test_intercept_cell_serves_the_body_and_re_running_swaps_it(
        session: NotebookSession, fake_cluster: Any) -> None:
    argv = ["intercept", "dps", "-n", "demo"]
    first = session.intercept_cell(argv, HANDLER)
    assert first is not None and first.name == "dps-demo"
    assert fake_cluster.intercepts["dps-demo"] == [str(first.server.port)]
    assert fetch(first.server.url) == (200, b'{"color": "blue"}')
    second = session.intercept_cell(argv, HANDLER.replace("blue", "orange"))
    assert second is not None and second.swapped and second.server is first.server
    assert fetch(first.server.url) == (200, b'{"color": "orange"}')
    assert session.user_ns["color"] is second.server.handler.obj
    assert [c[0] for c in fake_cluster.calls] == ["intercept"]


def test_intercept_cell_checks_the_arguments_before_the_cell_runs(
        session: NotebookSession, fake_cluster: Any) -> None:
    with pytest.raises(UsageError, match="invalid regex"):
        session.intercept_cell(["intercept", "dps", "--http-match", "x=("], "ran = True\n")
    with pytest.raises(UsageError, match="use %tp for other subcommands"):
        session.intercept_cell(["status"], "ran = True\n")
    assert "ran" not in session.user_ns and fake_cluster.calls == []


def test_leave_leaves_the_intercept_and_stops_its_cell_handler(
        session: NotebookSession, fake_cluster: Any) -> None:
    cell = session.intercept_cell(["intercept", "dps", "-n", "demo"], HANDLER)
    assert cell is not None
    session.leave("dps-demo")
    assert fake_cluster.intercepts == {} and not cell.server.running
    assert session.cells == {} and handlers.servers() == []
    with pytest.raises(UsageError, match="no intercept named dps-demo"):
        session.leave("dps-demo")


def test_the_panel_leave_button_leaves_through_the_session(
        session: NotebookSession, fake_cluster: Any) -> None:
    cell = session.intercept_cell(["intercept", "dps", "-n", "demo"], HANDLER)
    assert cell is not None
    panel = session.panel()
    info = mpb.InterceptInfo(state=mpb.INTERCEPT_STATE_ACTIVE, spec=mpb.InterceptSpec(
        name="dps-demo", workload="dps", namespace="demo", target_port=cell.server.port))
    _label, button = panel._intercept_row(info).children
    button.click()
    assert fake_cluster.calls[-1] == ["leave", "dps-demo"] and not cell.server.running
    assert panel.error.value == ""


def test_close_leaves_everything_made_here_and_stops_every_thread(
        fake_cluster: Any) -> None:
    session = NotebookSession()
    session.intercept_cell(["intercept", "dps", "-n", "demo"], HANDLER)
    session.run(["intercept", "web", "-n", "demo", "-p", "9000"])
    session.panel()
    assert tp_threads()
    session.close()
    assert fake_cluster.intercepts == {} and session.cells == {} and session.panels == []
    wait_for(lambda: tp_threads() == [], 10, "every tp- thread to stop")
