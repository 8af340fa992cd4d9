"""The magics through a real IPython shell (`run_line_magic`, `run_cell_magic`)."""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from IPython.core.error import UsageError
from tp_nb_helpers import tp_threads, wait_for

pytestmark = pytest.mark.timeout(60)

HANDLER_V1 = '''
def color(request):
    print("serving", request.path)
    return {"color": "blue"}
'''

HANDLER_V2 = '''
def color(request):
    return {"color": "orange"}
'''


def fetch(port: int, path: str = "/color") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_load_ext_registers_the_line_and_the_cell_magic(ip: Any) -> None:
    magics = ip.magics_manager.magics
    assert "tp" in magics["line"] and "tp" in magics["cell"]


def test_help_via_tp_question_mark_lists_the_subcommands(ip: Any) -> None:
    from tp_jupyter.magics import TpMagics

    doc = TpMagics.tp.__doc__ or ""
    for word in ("connect", "status", "traffic", "%%tp intercept"):
        assert word in doc
    ip.run_line_magic("pinfo", "%tp")   # what `%tp?` runs; must not fail


@pytest.mark.parametrize(("line", "fix"), [
    ("", "%tp needs a subcommand"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    ("connect --no-such-flag", r"unrecognized arguments: --no-such-flag \(see 'tp"),
    ("connect --context", r"expected one argument \(see 'tp connect --help'\)"),
    ("traffic -o 'not a name'", "give a Python variable name"),
    ("status 'unclosed", "close the quote"),
])
def test_bad_arguments_raise_usage_error_that_says_what_to_do(ip: Any, line: str,
                                                              fix: str) -> None:
    with pytest.raises(UsageError, match=fix):
        ip.run_line_magic("tp", line)


HEADER_REFUSED = ("--http-match header name 'x dev' is not a valid HTTP header name "
                  "(letters, digits and !#$%&'*+-.^_`|~ only); fix the KEY of KEY=REGEX")


def test_a_header_name_with_a_space_is_refused_by_the_line_magic(ip: Any) -> None:
    with pytest.raises(UsageError) as e:
        ip.run_line_magic("tp", "intercept web -n team -p 3000 --http-match 'x dev=alice'")
    assert str(e.value) == HEADER_REFUSED


def test_a_header_name_with_a_space_is_refused_before_the_cell_runs(ip: Any) -> None:
    with pytest.raises(UsageError) as e:
        ip.run_cell_magic("tp", "intercept web -n team --http-match 'x dev=alice'",
                          "ran = True\n" + HANDLER_V1)
    assert str(e.value) == HEADER_REFUSED
    assert "ran" not in ip.user_ns


def test_traffic_of_an_unknown_intercept_name_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError) as e:
        ip.run_line_magic("tp", "traffic nosuch")
    assert str(e.value) == ("no intercept named 'nosuch'; there is none yet: start one with "
                            "`tp intercept WORKLOAD -p PORT`")


def test_status_without_a_daemon_says_how_to_start_one(ip: Any) -> None:
    result = ip.run_line_magic("tp", "status")
    assert "Daemon: not running" in str(result)
    assert "<table>" in result._repr_html_() or "<b>" in result._repr_html_()


def test_quit_without_a_daemon_says_it_is_not_running(ip: Any) -> None:
    assert str(ip.run_line_magic("tp", "quit")) == "tp daemon is not running"


def test_help_flag_prints_help_and_returns_nothing(ip: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert ip.run_line_magic("tp", "status --help") is None
    assert "usage: tp status" in capsys.readouterr().out


def test_traffic_returns_a_table_and_stores_the_dataframe_with_o(ip: Any) -> None:
    table = ip.run_line_magic("tp", "traffic -o df")
    assert "No traffic captured yet" in str(table)
    df = ip.user_ns["df"]
    assert list(df.columns[:7]) == ["time", "intercept", "method", "path", "status",
                                    "duration_ms", "routed_to"]


def test_the_cell_form_serves_the_cell_handler_and_intercepts_to_its_port(
        ip: Any, fake_cluster: Any) -> None:
    cell = ip.run_cell_magic("tp", "intercept dataprocessingservice -n demo", HANDLER_V1)
    assert cell.name == "dataprocessingservice-demo"
    assert fake_cluster.intercepts["dataprocessingservice-demo"] == [str(cell.server.port)]
    assert "Serving color (function)" in str(cell)
    assert fetch(cell.server.port) == (200, b'{"color": "blue"}')
    wait_for(lambda: "serving /color" in cell.server.output.text, 5, "print reaches the cell")


def test_re_running_the_cell_swaps_the_handler_with_no_failed_request(
        ip: Any, fake_cluster: Any) -> None:
    first = ip.run_cell_magic("tp", "intercept dps -n demo --http-match x-dev=me", HANDLER_V1)
    port = first.server.port
    results: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            conn.request("GET", "/color")
            r = conn.getresponse()
            results.append((r.status, r.read()))
        conn.close()

    t = threading.Thread(target=client, name="request-loop")
    t.start()
    try:
        wait_for(lambda: len(results) > 5, 10, "requests on v1")
        second = ip.run_cell_magic("tp", "intercept dps -n demo --http-match x-dev=me",
                                   HANDLER_V2)
        wait_for(lambda: results and b"orange" in results[-1][1], 10, "requests on v2")
    finally:
        stop.set()
        t.join(10)
    assert second.swapped and second.server is first.server and second.server.port == port
    assert "Swapped the handler" in str(second)
    assert all(status == 200 for status, _ in results), "a request failed during the swap"
    assert [c[0] for c in fake_cluster.calls] == ["intercept"]   # no second intercept


def test_changing_the_cell_arguments_leaves_the_old_intercept_and_makes_a_new_one(
        ip: Any, fake_cluster: Any) -> None:
    ip.run_cell_magic("tp", "intercept dps -n demo --http-match x-dev=me", HANDLER_V1)
    cell = ip.run_cell_magic("tp", "intercept dps -n demo --http-match x-dev=you", HANDLER_V2)
    assert [c[0] for c in fake_cluster.calls] == ["intercept", "leave", "intercept"]
    assert fetch(cell.server.port)[1] == b'{"color": "orange"}'


def test_a_handler_exception_gives_500_and_a_traffic_row_with_the_traceback(
        ip: Any, fake_cluster: Any) -> None:
    cell = ip.run_cell_magic("tp", "intercept dps -n demo",
                             "def handler(request):\n    return 1 / 0\n")
    status, body = fetch(cell.server.port)
    assert status == 500 and b"ZeroDivisionError" in body
    df = ip.run_line_magic("tp", "traffic -o rows").frame
    assert len(df) == 1
    row = df.iloc[0]
    assert row.status == 500 and "ZeroDivisionError" in row.error
    assert row.intercept == "dps-demo" and row.captured_by == "kernel"


def test_a_cell_without_a_handler_is_a_usage_error_and_intercepts_nothing(
        ip: Any, fake_cluster: Any) -> None:
    with pytest.raises(UsageError, match="define a function taking a request"):
        ip.run_cell_magic("tp", "intercept dps -n demo", "x = 1\n")
    assert fake_cluster.calls == []


def test_a_failed_intercept_leaves_no_server_behind(ip: Any, fake_cluster: Any) -> None:
    from tp_jupyter import handlers

    with pytest.raises(UsageError, match="workload missing not found"):
        ip.run_cell_magic("tp", "intercept missing", HANDLER_V1)
    assert handlers.servers() == []


def test_the_cell_magic_takes_only_intercept(ip: Any) -> None:
    with pytest.raises(UsageError, match="use %tp for other subcommands"):
        ip.run_cell_magic("tp", "status", "x = 1\n")


def test_the_line_form_intercept_and_leave_go_through_the_same_parser(
        ip: Any, fake_cluster: Any) -> None:
    ip.run_line_magic("tp", "intercept dps -n demo -p 8080:3000")
    assert fake_cluster.intercepts["dps-demo"] == ["8080:3000"]
    ip.run_line_magic("tp", "leave dps-demo")
    with pytest.raises(UsageError, match="no intercept named dps-demo"):
        ip.run_line_magic("tp", "leave dps-demo")
    with pytest.raises(UsageError, match="required: -p/--port"):
        ip.run_line_magic("tp", "intercept dps -n demo")


def test_unload_leaves_every_intercept_and_stops_every_thread(fake_cluster: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    import tp_jupyter

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tp_jupyter")
    shell.run_cell_magic("tp", "intercept dps -n demo", HANDLER_V1)
    shell.run_line_magic("tp", "intercept web -n demo -p 9000")
    panel = tp_jupyter.panel()
    assert tp_threads()
    shell.run_line_magic("unload_ext", "tp_jupyter")
    assert fake_cluster.intercepts == {}
    wait_for(lambda: tp_threads() == [], 10, "every tp- thread to stop")
    assert "tp" not in shell.magics_manager.magics["line"]
    assert not panel.feed.worker.running and not panel.worker.running
