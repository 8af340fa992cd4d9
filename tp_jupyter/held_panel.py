"""The panel's "Held requests" section: each request waiting on the workstation with
Forward local / Forward cluster / Respond / Drop buttons.

A named thread `tp-held-refresh` asks the daemon for the held requests every
`Settings.notebook.held_poll_interval` seconds and rebuilds the rows only when the set
changed. A button decides on a thread of its own (`tp-held-decide`), so a slow forward
never blocks the kernel; the outcome (what the caller got) shows in the section's last
line. Errors are shown there too, never raised (there is no cell to raise into).
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Iterable

import ipywidgets as w
from tp_protocol.settings import get_settings

from tp_jupyter import holding
from tp_jupyter.errors import TpError
from tp_jupyter.worker import Worker

log = logging.getLogger(__name__)


def held_html(held: Iterable[holding.HeldRequest]) -> str:
    """A plain table of the held requests (the section's text without its buttons)."""
    rows = "".join(f"<tr class='tp-held-row' data-id='{html.escape(r.id)}'>"
                   f"<td>{html.escape(r.id)}</td><td>{html.escape(r.intercept)}</td>"
                   f"<td>{html.escape(r.method)}</td><td>{html.escape(r.path)}</td></tr>"
                   for r in held)
    return f"<table class='tp-held'>{rows}</table>" if rows else "<i>none waiting</i>"


class HeldSection:
    """Held requests with their buttons; `widget` goes into the panel."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = list(names)
        self.rows = w.VBox()
        self.rows.add_class("tp-held-rows")
        self.rows.children = (w.HTML("<i>none waiting</i>"),)
        self.last = w.HTML()
        self.last.add_class("tp-held-last")
        self.holding = w.HTML()
        self.holding.add_class("tp-holding")
        self.widget = w.VBox([w.HTML("<b>Held requests</b>"), self.holding, self.rows,
                              self.last])
        self.widget.add_class("tp-held-section")
        self.shown: tuple[list[str], dict[str, float], dict[str, int]] | None = None
        self.worker = Worker("tp-held-refresh", self._loop)
        self._wake = threading.Event()

    def start(self) -> None:
        self.worker.start()

    def close(self) -> None:
        self.worker.stop(wake=self._wake.set)

    def _loop(self) -> None:
        interval = get_settings().notebook.held_poll_interval
        while not self.worker.stopping.is_set():
            try:
                self.refresh()
            except Exception as e:   # e.g. the daemon stopped: say so, keep polling
                log.debug("held refresh failed: %s", e)
            self._wake.wait(interval)
            self._wake.clear()

    def refresh(self) -> None:
        """Ask the daemon now; rebuild the rows when the held requests changed."""
        try:
            listed = holding.held()
        except TpError:
            listed = holding.HeldList()   # not connected (yet): nothing can be held
        held = [r for r in listed if not self.names or r.intercept in self.names]
        now = ([r.id for r in held], listed.holding, listed.copies_dropped)
        if now == self.shown:
            return
        self.shown = now
        self.holding.value = f"<small>{html.escape(listed.holding_line())}</small>"
        self.rows.children = tuple(self._row(r) for r in held) or (
            w.HTML("<i>none waiting</i>"),)

    def _row(self, req: holding.HeldRequest) -> w.Widget:
        label = w.HTML(f"<code>{html.escape(req.id)}</code> {html.escape(req.method)} "
                       f"<code>{html.escape(req.path)}</code> ({html.escape(req.intercept)}, "
                       f"from {html.escape(req.source or '?')})",
                       layout=w.Layout(flex="1"))
        status = w.BoundedIntText(value=200, min=100, max=599, layout=w.Layout(width="70px"))
        body = w.Text(placeholder="response body", layout=w.Layout(width="160px"))
        buttons = []
        for text, style, action in (
                ("Forward local", "success", lambda r: r.forward(to="local")),
                ("Forward cluster", "info", lambda r: r.forward(to="cluster")),
                ("Respond", "", lambda r: r.respond(int(status.value), body.value)),
                ("Drop", "danger", lambda r: r.drop())):
            button = w.Button(description=text, button_style=style,
                              layout=w.Layout(width="auto"))
            button.add_class("tp-held-" + text.lower().replace(" ", "-"))
            if text == "Forward cluster" and req.mode == "mirror":
                button.disabled = True   # the cluster answered the copy's caller already
                button.tooltip = "a mirror copy: the cluster already answered its caller"
            button.on_click(lambda _b, act=action: self.decide(req, act))
            buttons.append(button)
        row = w.HBox([label, *buttons[:2], status, body, *buttons[2:]])
        row.add_class("tp-held-row")
        return row

    def decide(self, req: holding.HeldRequest,
               action: Callable[[holding.HeldRequest], holding.HeldOutcome]) -> None:
        """What a button does: decide on a thread, then show what the caller got."""
        self.last.value = f"<i>{html.escape(req.id)}: deciding...</i>"

        def run() -> None:
            try:
                said = html.escape(str(action(req)))
                self.last.value = f"<span class='tp-held-outcome'>{said}</span>"
            except Exception as e:
                self.last.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            self._wake.set()   # the row goes at the next look

        threading.Thread(target=run, name="tp-held-decide", daemon=True).start()
