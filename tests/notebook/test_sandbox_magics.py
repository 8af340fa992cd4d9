"""The magics against the sandbox: an IPython shell inside laptop 1 (tp_nb_shell) runs every
subcommand through `run_line_magic`/`run_cell_magic`, and requests reach its cell handlers
through the cluster Service, as another service of the cluster would send them.

The tests run in order and share the shell, its connection and a fresh demo namespace:
connect, status, list, intercept (cell and line form), handler swap under load, handler
failure, traffic, bad arguments, leave, uninstall, quit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop
from tp_nb_helpers import wait_for
from tp_nb_shell import LaptopShell, ShellError

# the schema checker of the --format tests (the shipped JSON Schemas)
from tp_output_testing import check

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]

SVC = "dataprocessingservice"

BLUE = '''
def color(request):
    print("serving", request.path)
    return {"color": "blue"}
'''

ORANGE = '''
def color(request):
    return {"color": "orange"}
'''

BROKEN = '''
def color(request):
    raise RuntimeError("no color today")
'''

# A client of the cluster Service in laptop 1: a new connection per request (each one goes
# through the agent, the manager and the daemon), counting answers until told to stop.
LOOP = r'''
import http.client, json, sys, os, time
host, state, stop = sys.argv[1], sys.argv[2], sys.argv[3]
counts = {"ok": 0, "failed": 0, "bodies": [], "errors": []}
while not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection(host, 3000, timeout=10)
        c.request("GET", "/color")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        if r.status == 200:
            counts["ok"] += 1
            if body not in counts["bodies"]:
                counts["bodies"].append(body)
        else:
            counts["failed"] += 1
            counts["errors"].append(f"{r.status} {body[:200]}")
    except Exception as e:
        counts["failed"] += 1
        counts["errors"].append(repr(e))
    with open(state + ".tmp", "w") as f:
        json.dump(counts, f)
    os.replace(state + ".tmp", state)
'''


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    if not sandbox.has_node:
        pytest.skip("intercepts need the sandbox node (pods)")
    from tp_sandbox import lifecycle

    namespace = f"nb-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A short $TP_HOME: the daemon's socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tpnb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def lap(sandbox: Any) -> Laptop:
    return Laptop(sandbox, 1)


@pytest.fixture(scope="module")
def env(lap: Laptop, home: Path) -> dict[str, str]:
    return {"HOME": str(home), "TP_HOME": str(home / "tp"), "KUBECONFIG": str(lap.kubeconfig),
            "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(scope="module")
def shell(lap: Laptop, env: dict[str, str], demo: str) -> Iterator[LaptopShell]:
    sh = LaptopShell(lap, env)
    try:
        yield sh
    finally:
        sh.close()
        lap.run([sys.executable, "-m", "tp_jupyter.cli", "quit"], timeout=60, env=env)


def curl(lap: Laptop, url: str, *headers: str) -> tuple[int, str]:
    """(status, body) of a GET from laptop 1."""
    args = " ".join(f"-H '{h}'" for h in headers)
    out = lap.run(f"curl -sS --max-time 10 {args} -w '\\n%{{http_code}}' {url}").stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body.rstrip("\n")


def color_url(ns: str) -> str:
    return f"http://{SVC}.{ns}:3000/color"


def test_connect_and_status_through_the_magics(shell: LaptopShell) -> None:
    out = shell.line("connect")
    assert "Connected to context" in out["text"] or "Already connected" in out["text"]
    status = shell.line("status")
    assert "Cluster: connected" in status["text"] and "<table>" in status["html"]
    with pytest.raises(ShellError, match="tp quit"):   # a second connect elsewhere: the fix
        shell.line("connect --context no-such-context")


def test_list_shows_the_demo_workloads(shell: LaptopShell, demo: str) -> None:
    listing = shell.line(f"list -n {demo}")["text"]
    assert f"{SVC}: ready to intercept" in listing
    assert "Workloads in" in shell.line(f"list -n {demo}")["html"]


def test_tab_completes_the_connected_namespace_and_its_workloads_from_the_daemon(
        shell: LaptopShell, demo: str) -> None:
    connected = json.loads(shell.line("status --format json")["text"])
    namespace = connected["connection"]["namespace"]
    assert shell.complete("%tp list -n ") == [namespace]
    workloads = json.loads(shell.line(f"list -n {demo} --format json")["text"])
    names = sorted(w["name"] for w in workloads["workloads"])
    assert SVC in names
    assert shell.complete(f"%tp intercept -n {demo} ") == names
    assert shell.complete(f"%%tp intercept --namespace={demo} data") == [SVC]
    assert shell.complete(f"%tp uninstall -n {demo} --agent data") == [SVC]


def test_a_cell_handler_answers_requests_sent_to_the_cluster_service(
        shell: LaptopShell, lap: Laptop, demo: str) -> None:
    out = shell.cell(f"intercept {SVC} -n {demo} --mount false", BLUE)
    assert out["type"] == "CellIntercept"
    assert f"for intercept {SVC}-{demo}" in out["text"]
    assert "Intercepting  : all TCP connections" in out["text"]
    assert curl(lap, color_url(demo)) == (200, '{"color": "blue"}')
    listing = shell.line(f"list -n {demo}")["text"]
    assert f"{SVC}: intercepted" in listing and "State         : ACTIVE" in listing


def test_re_running_the_cell_swaps_the_handler_with_no_failed_request_through_the_cluster(
        shell: LaptopShell, lap: Laptop, demo: str, home: Path) -> None:
    state, stop = home / "loop.json", home / "loop.stop"

    def counts() -> dict[str, Any]:
        try:
            return dict(json.loads(state.read_text()))
        except (OSError, ValueError):
            return {}

    loop = lap.popen([sys.executable, "-c", LOOP, f"{SVC}.{demo}", str(state), str(stop)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: counts().get("ok", 0) >= 10, 30, "ten answers from the first handler")
        swapped = shell.cell(f"intercept {SVC} -n {demo} --mount false", ORANGE)
        assert "Swapped the handler" in swapped["text"]
        wait_for(lambda: '{"color": "orange"}' in counts().get("bodies", []), 30,
                 "answers from the second handler")
        seen = counts()["ok"]
        wait_for(lambda: counts()["ok"] >= seen + 10, 30, "ten more answers after the swap")
    finally:
        stop.touch()
        loop.wait(30)
    final = counts()
    assert final["failed"] == 0, final["errors"][:5]
    assert final["bodies"] == ['{"color": "blue"}', '{"color": "orange"}']


def test_a_handler_exception_is_a_500_with_the_traceback_and_a_traffic_row(
        shell: LaptopShell, lap: Laptop, demo: str) -> None:
    shell.cell(f"intercept {SVC} -n {demo} --mount false", BROKEN)
    status, body = curl(lap, color_url(demo) + "?why")
    assert status == 500
    assert "RuntimeError: no color today" in body and "Traceback" in body
    name = f"{SVC}-{demo}"

    def rows() -> Any:
        shell.line(f"traffic {name} -o df")
        n = shell.eval("len(df[(df.path == '/color?why') & (df.status == 500)])")
        return n >= 2 and n

    wait_for(rows, 20, "the agent's and the kernel's rows of the failed request")
    kinds = shell.eval("sorted(df[df.path == '/color?why'].captured_by)")
    assert kinds == ["agent", "kernel"]
    error = shell.eval("df[(df.path == '/color?why') & (df.captured_by == 'kernel')]"
                       ".error.iloc[0]")
    assert "Traceback" in error and "RuntimeError: no color today" in error
    table = shell.line(f"traffic {name}")
    assert "/color?why" in table["text"] and "500" in table["text"]


def test_a_kernel_row_is_replayed_through_the_daemon_to_the_fixed_handler(
        shell: LaptopShell, demo: str) -> None:
    shell.cell(f"intercept {SVC} -n {demo} --mount false", ORANGE)   # the fix: a swap
    shell.line(f"traffic {SVC}-{demo} -o df")
    again = ("[int((r := __import__('tp_jupyter').replay(df[(df.path == '/color?why') & "
             "(df.captured_by == 'kernel')].iloc[0], to='{to}')).status), "
             "r.response_body.strip(), r.routed_to]")
    assert shell.eval(again.format(to="local")) == [200, '{"color": "orange"}', "local"]
    # the app in the cluster answers /color whatever the query
    assert shell.eval(again.format(to="cluster")) == [200, '"green"', "cluster"]


@pytest.mark.parametrize(("line", "fix"), [
    ("intercept {svc} -n {ns} -p 3000 --http-match x-dev", "use KEY=REGEX"),
    ("intercept {svc} -n {ns} -p 3000 --http-match 'x-dev=(a'", "fix the regular expression"),
    ("intercept no-such-workload -n {ns} -p 3000", "tp list"),
    ("intercept {svc} -n {ns} -p 0", "LOCALPORT 1-65535"),
    ("leave no-such-intercept", "tp list"),
    ("uninstall", "--agent"),
    ("list -n", "expected one argument"),
])
def test_bad_arguments_are_usage_errors_that_say_what_to_do(shell: LaptopShell, demo: str,
                                                            line: str, fix: str) -> None:
    with pytest.raises(ShellError) as e:
        shell.line(line.format(svc=SVC, ns=demo))
    assert e.value.error == "UsageError", e.value
    assert fix in e.value.message and "\n" not in e.value.message


def test_a_bad_cell_argument_runs_no_cell_and_intercepts_nothing(
        shell: LaptopShell, demo: str) -> None:
    with pytest.raises(ShellError) as e:
        shell.cell(f"intercept {SVC} -n {demo} --http-match =x", "ran = True\n" + BLUE)
    assert e.value.error == "UsageError" and "KEY=REGEX" in e.value.message
    assert shell.eval("'ran' in globals()") is False


def test_tab_completes_the_names_of_your_intercepts_for_leave(shell: LaptopShell,
                                                             demo: str) -> None:
    assert shell.complete("%tp leave ") == [f"{SVC}-{demo}"]
    namespaces = shell.complete("%tp list -n ")
    assert demo in namespaces     # the intercept's namespace joins the connected one


def test_leave_gives_the_traffic_back_to_the_app(shell: LaptopShell, lap: Laptop,
                                                 demo: str) -> None:
    out = shell.line(f"leave {SVC}-{demo}")
    assert out["text"] == f"Left intercept {SVC}-{demo}"
    assert curl(lap, color_url(demo)) == (200, '"green"')
    assert shell.eval("len(__import__('tp_jupyter.handlers').handlers.servers())") == 0


def test_the_cell_form_with_format_json_shows_the_document(shell: LaptopShell, lap: Laptop,
                                                           demo: str) -> None:
    out = shell.cell(f"intercept {SVC} -n {demo} --mount false --http-match x-doc=1 "
                     "--format json", BLUE)
    data = check(json.loads(out["text"]), "cell-intercept")
    assert data["name"] == f"{SVC}-{demo}" and data["swapped"] is False
    assert data["handler"]["name"] == "color" and data["handler"]["kind"] == "function"
    assert data["intercept"]["state"] == "active"
    assert data["intercept"]["destination"]["port"] == int(data["handler"]["url"].rsplit(
        ":", 1)[1].split("/")[0])
    assert curl(lap, color_url(demo), "x-doc: 1") == (200, '{"color": "blue"}')
    left = json.loads(shell.line(f"leave {SVC}-{demo} --format json")["text"])
    assert check(left, "leave") == {"left": f"{SVC}-{demo}"}
    assert curl(lap, color_url(demo), "x-doc: 1") == (200, '"green"')


def test_the_line_form_intercepts_to_a_local_port(shell: LaptopShell, lap: Laptop,
                                                  demo: str) -> None:
    app = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                    env={"COLOR": "red", "PORT": "3400"}, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: curl(lap, "http://127.0.0.1:3400/color")[0] == 200, 30,
                 "the local app")
        out = shell.line(f"intercept {SVC} -n {demo} -p 3400 --name mine "
                         "--http-match x-dev=me --mount false")
        assert out["type"] == "InterceptResult" and "Destination   : 127.0.0.1:3400" in out["text"]
        assert curl(lap, color_url(demo), "x-dev: me") == (200, '"red"')
        assert curl(lap, color_url(demo)) == (200, '"green"')
        assert shell.line("leave mine")["text"] == "Left intercept mine"
    finally:
        app.terminate()
        app.wait(10)


def test_uninstall_removes_the_agent_and_quit_disconnects(shell: LaptopShell, lap: Laptop,
                                                          demo: str) -> None:
    out = shell.line(f"uninstall --agent {SVC} -n {demo}", timeout=150)
    assert out["text"] == f"Removed the traffic-agent from Deployment/{SVC}.{demo}"
    assert "not yet installed" in shell.line(f"list -n {demo}")["text"].splitlines()[0]
    started = time.monotonic()
    assert shell.line("quit")["text"] == "Disconnected; tp daemon stopped"
    assert time.monotonic() - started < 60
    assert "Daemon: not running" in shell.line("status")["text"]
