"""The panel: connection state, intercepts with Leave buttons, live traffic table."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from tp_nb_helpers import tp_threads, wait_for
from tp_protocol import manager_pb2 as mpb

from tp_jupyter import api, handlers, widgets

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def panel() -> Iterator[widgets.Panel]:
    p = widgets.Panel(leave=api.leave)
    yield p
    p.close()
    handlers.shutdown()


def test_the_panel_says_when_the_daemon_is_not_running(panel: widgets.Panel) -> None:
    assert "daemon not running" in panel.state.value
    assert "%tp connect" in panel.state.value
    assert "no intercepts" in panel.intercepts.children[0].value
    assert "no traffic yet" in panel.table.value


def test_the_live_table_shows_a_new_row_when_a_request_arrives(panel: widgets.Panel) -> None:
    rec = mpb.TrafficRecord(id="pod:1", intercept_name="dps-demo", method="GET",
                            path="/color", status=200, duration_ms=3.2,
                            routed_to=mpb.ROUTED_TO_LOCAL)
    rec.time.GetCurrentTime()
    panel.feed.add(rec, "agent")
    wait_for(lambda: panel.rows_shown == 1, 5, "the row in the table")
    assert "data-rows='1'" in panel.table.value and "/color" in panel.table.value


def test_a_failing_cell_handler_appears_highlighted_in_the_live_table(
        panel: widgets.Panel) -> None:
    server = handlers.HandlerServer(lambda req: 1 / 0, "dps-demo")
    wait_for(lambda: id(server) in panel.feed._seen_servers, 5, "the panel to watch the server")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/boom", timeout=5)
    wait_for(lambda: panel.rows_shown == 1, 5, "the failed row in the table")
    assert "/boom" in panel.table.value and "#fde2e2" in panel.table.value
    assert "ZeroDivisionError" in panel.table.value   # the traceback is the row's tooltip


def test_intercepts_are_listed_with_a_leave_button(panel: widgets.Panel) -> None:
    info = mpb.InterceptInfo(state=mpb.INTERCEPT_STATE_ACTIVE, spec=mpb.InterceptSpec(
        name="dps-demo", workload="dps", namespace="demo", target_host="127.0.0.1",
        target_port=8080, header_matches=[mpb.HeaderMatch(name="x-dev", regex="me")]))
    row = panel._intercept_row(info)
    label, button = row.children
    assert "dps-demo" in label.value and "[active]" in label.value and "x-dev=me" in label.value
    assert button.description == "Leave"
    button.click()   # no daemon: the error is shown in the panel, not raised
    assert "run `tp connect` first" in panel.error.value


def test_the_leave_button_calls_the_leave_it_was_given() -> None:
    left: list[str] = []
    p = widgets.Panel(leave=left.append, start=False)
    try:
        info = mpb.InterceptInfo(state=mpb.INTERCEPT_STATE_ACTIVE, spec=mpb.InterceptSpec(
            name="dps-demo", workload="dps", namespace="demo", target_port=8080))
        _label, button = p._intercept_row(info).children
        button.click()
        assert left == ["dps-demo"] and p.error.value == ""
    finally:
        p.close()


def test_closing_the_panel_stops_its_threads() -> None:
    p = widgets.Panel(leave=api.leave)
    assert {"tp-traffic-watch", "tp-widget-refresh"} <= set(tp_threads())
    p.close()
    wait_for(lambda: not ({"tp-traffic-watch", "tp-widget-refresh"} & set(tp_threads())), 10,
             "the panel threads to stop")
