"""The notebook panel (ipywidgets): connection state, intercepts with Leave buttons, and a
live traffic table that updates as requests arrive.

    panel = tp_jupyter.panel()     # displays itself when it is a cell's last value
    panel.close()                  # stops its threads (the notebook session closes all)

`Panel(names, leave=...)` is made by the notebook session (`tp_jupyter.session`), which
hands it the `leave(name)` its Leave buttons call and closes it on unload. Rows come
from a `traffic_data.TrafficFeed` (the daemon's live stream plus failed calls of
cell handlers); a named thread `tp-widget-refresh` re-renders the table at most every
`Settings.notebook.widget_refresh_interval` seconds, only when rows arrived.

Errors: a failing refresh is logged and shown in the panel's error line, never raised
into the notebook (it runs on a background thread).
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter import api, handlers, mirror_view
from tp_jupyter.errors import TpError
from tp_jupyter.held_panel import HeldSection
from tp_jupyter.traffic_data import TrafficFeed
from tp_jupyter.worker import Worker

log = logging.getLogger(__name__)

_STATES = {mpb.INTERCEPT_STATE_WAITING: "waiting", mpb.INTERCEPT_STATE_ACTIVE: "active",
           mpb.INTERCEPT_STATE_NO_AGENT: "no agent", mpb.INTERCEPT_STATE_CONFLICT: "conflict",
           mpb.INTERCEPT_STATE_AGENT_ERROR: "agent error",
           mpb.INTERCEPT_STATE_REMOVED: "removed"}
_LIVE_COLUMNS = ["time", "intercept", "method", "path", "status", "duration_ms", "routed_to"]

Leave = Callable[[str], Any]
"""What a Leave button calls with the intercept's name."""


def traffic_html(rows: list[dict[str, Any]]) -> str:
    """The live table: newest last; failed exchanges (5xx, errors) highlighted."""
    head = "".join(f"<th>{c}</th>" for c in _LIVE_COLUMNS)
    body = []
    for row in rows:
        cells = []
        for c in _LIVE_COLUMNS:
            v = row.get(c, "")
            if c == "time" and hasattr(v, "strftime"):
                v = v.strftime("%H:%M:%S.%f")[:-3]
            cells.append(f"<td>{html.escape(str(v))}</td>")
        failed = int(row.get("status") or 0) >= 500 or bool(row.get("error"))
        style = " style='background:#fde2e2'" if failed else ""
        title = f" title='{html.escape(str(row['error']))}'" if row.get("error") else ""
        body.append(f"<tr class='tp-row' data-id='{html.escape(str(row.get('id', '')))}'"
                    f"{style}{title}>{''.join(cells)}</tr>")
    if not body:
        body.append(f"<tr><td colspan='{len(_LIVE_COLUMNS)}'><i>no traffic yet</i></td></tr>")
    return (f"<table class='tp-traffic-live' data-rows='{len(rows)}'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


class Panel:
    """Connection state, intercepts (each with a Leave button) and live traffic."""

    def __init__(self, names: Iterable[str] = (), *, leave: Leave, start: bool = True) -> None:
        s = get_settings().notebook
        self._leave = leave
        self.rows_shown = 0
        self.state = w.HTML(layout=w.Layout(flex="1"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.refresh_button.on_click(lambda _: self.refresh_state())
        self.intercepts = w.VBox()
        self.table = w.HTML(traffic_html([]))
        self.error = w.HTML()
        self.held = HeldSection(names)   # requests held by `--hold`, with their buttons
        self.widget = w.VBox([
            w.HBox([self.state, self.refresh_button]),
            w.HTML("<b>Intercepts</b>"), self.intercepts, self.held.widget,
            w.HTML(f"<b>Traffic</b> (latest {s.widget_rows})"), self.table, self.error],
            layout=w.Layout(border="1px solid #ccc", padding="6px"))
        self.widget.add_class("tp-panel")
        self.feed = TrafficFeed(names)
        self.feed.listeners.append(lambda _row: self._dirty.set())
        self._dirty = threading.Event()
        self.worker = Worker("tp-widget-refresh", self._loop)
        self._stop = self.worker.stopping
        self.refresh_state()
        if start:
            self.start()

    # -- lifecycle

    def start(self) -> None:
        self.feed.start()
        self.worker.start()
        self.held.start()

    def close(self) -> None:
        """Stop the refresh thread and the traffic feed, and close the widgets."""
        self.worker.stop(wake=self._dirty.set)
        self.held.close()
        self.feed.stop()
        self.widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        # the widget's own text/plain is a repr of every child's state; a fixed line
        # reads better where widgets do not render (and keeps saved notebooks stable)
        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/plain"] = ("tp panel: connection state, intercepts and live traffic "
                                "(shown where Jupyter widgets render)")
        display(bundle, raw=True)  # type: ignore[no-untyped-call]

    # -- rendering

    def _loop(self) -> None:
        interval = get_settings().notebook.widget_refresh_interval
        while not self._stop.is_set():
            for server in handlers.servers():   # cell handlers started after the panel
                self.feed.watch_server(server)
            if self._dirty.wait(interval) and not self._stop.is_set():
                self._dirty.clear()
                try:
                    self.render_table()
                except Exception as e:
                    log.exception("rendering the traffic table failed")
                    self.error.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            elif self.feed.last_error != self._last_feed_error:
                self._show_feed_error()
            self._stop.wait(interval)   # at most one render per interval

    _last_feed_error = ""

    def _show_feed_error(self) -> None:
        self._last_feed_error = self.feed.last_error
        self.error.value = (f"<span style='color:#b00'>{html.escape(self.feed.last_error)}"
                            "</span>" if self.feed.last_error else "")

    def render_table(self) -> None:
        """Show the newest rows now (the refresh thread calls this when rows arrive)."""
        rows = self.feed.snapshot()
        self.table.value = traffic_html(rows[-get_settings().notebook.widget_rows:])
        self.rows_shown = len(rows)

    def refresh_state(self) -> None:
        """Read the connection state and intercepts from the daemon."""
        try:
            st = api.status()
        except TpError as e:
            self.state.value = f"<b>tp</b>: <span style='color:#b00'>{html.escape(str(e))}</span>"
            self.intercepts.children = ()
            return
        if not st.daemon_running:
            self.state.value = "<b>tp</b>: daemon not running (run <code>%tp connect</code>)"
        elif not st.connected:
            self.state.value = "<b>tp</b>: not connected (run <code>%tp connect</code>)"
        else:
            c = st.info.connection
            self.state.value = (f"<b>tp</b>: connected to <code>{html.escape(c.cluster_context)}"
                                f"</code> ({html.escape(c.cluster_server)}), namespace "
                                f"<code>{html.escape(c.namespace)}</code>")
        infos = list(st.info.intercepts) if st.daemon_running else []
        self.intercepts.children = tuple(self._intercept_row(i) for i in infos) or (
            w.HTML("<i>no intercepts</i>"),)

    def _intercept_row(self, info: mpb.InterceptInfo) -> w.Widget:
        spec = info.spec
        match = ", ".join(f"{m.name}={m.regex}" for m in spec.header_matches) or "all TCP"
        if spec.mirror or spec.methods or spec.path_equal or spec.path_prefix or spec.path_regex:
            match = mirror_view.panel_text(info)   # filters, and a mirror's copy counters
        label = w.HTML(f"<code>{html.escape(spec.name)}</code> {spec.workload}.{spec.namespace}"
                       f" &rarr; {spec.target_host}:{spec.target_port} "
                       f"[{_STATES.get(info.state, 'unknown')}] ({html.escape(match)})",
                       layout=w.Layout(flex="1"))
        button = w.Button(description="Leave", button_style="warning",
                          layout=w.Layout(width="80px"))
        button.on_click(lambda _b, name=spec.name: self.leave(name))
        return w.HBox([label, button])

    def leave(self, name: str) -> None:
        """What the Leave button does: the `leave` callable this panel was given."""
        try:
            self._leave(name)
        except Exception as e:   # shown in the panel: a button has no cell to raise into
            self.error.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
        self.refresh_state()
