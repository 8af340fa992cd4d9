"""Traffic as data: captured exchanges as a pandas DataFrame, replay, and a live feed.

    traffic(name=None, kernel=False) -> DataFrame   one row per exchange
                                                    (the package's `tp_jupyter.traffic`)
    replay(row, to="local" | "cluster") -> Series    the new exchange
    TrafficFeed                                      live rows for the widget
    register(sub)                                    `tp traffic [NAME] [-o VAR] [--kernel]`

Rows come from two places, told apart by the `captured_by` column:
- "agent": the traffic-agent's captures, read from the daemon (`WatchTraffic`);
- "kernel": exchanges answered by cell handlers in this kernel (`tp_jupyter.handlers`).
  By default only the kernel rows of failed handler calls are added (they carry the
  traceback in `error`; the agent row of the same request has only the 500), and
  `kernel=True` adds every kernel row.

Every daemon call goes through `daemon_client.DaemonClient`; replay is the daemon's
`Replay` of a row it keeps (a kernel row is replayed as the agent's row of its request).
pandas is imported only here, where tables are built. Errors are the front's TpErrors
(tp_jupyter.errors): `UsageError` for a row that cannot be replayed where asked,
`DaemonError` when the daemon fails.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import html
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tp_daemon import paths
from tp_protocol import daemon_pb2 as dpb
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import get_settings

from tp_jupyter import output
from tp_jupyter.daemon_client import DaemonClient, TrafficStream
from tp_jupyter.errors import DaemonNotRunning, TpError, UsageError
from tp_jupyter.render import Rendered
from tp_jupyter.worker import Worker

if TYPE_CHECKING:
    import pandas as pd

    from tp_jupyter import handlers

log = logging.getLogger(__name__)

COLUMNS = ["time", "intercept", "method", "path", "status", "duration_ms", "routed_to",
           "request_headers", "response_headers", "request_body", "response_body", "error",
           "captured_by", "id", "workload", "namespace", "pod", "source", "client_session",
           "request_size", "response_size",
           "mode", "developer", "port", "service_port_name", "request_truncated",
           "response_truncated", "local_status", "local_response_headers",
           "local_response_body", "local_duration_ms", "local_error", "local_truncated"]
"""Columns of every traffic DataFrame, in order.

Where a row came from (point 9 of the debugger issue; `tp_protocol.traffic` records them):
- `mode`: "intercept" (routed to the intercept's owner), "mirror" (the app answered; a
  copy went to the mirror's owner), "hold" (parked for the owner), "" (no intercept
  matched: the app answered);
- `developer`: the matching intercept's owner (Kubernetes username), "" if none;
- `workload`, `namespace`, `pod`: where the traffic-agent runs; `port` (the agent's
  listener port) and `service_port_name` (the service port's name, "" when numeric);
  `intercept`: the intercept or mirror name.
Bodies: `request_body`/`response_body` keep at most `Settings.intercept.capture_body_limit`
bytes (text ends with " [truncated]" then), and `request_truncated`/`response_truncated`
say so as booleans. Header values of `Settings.intercept.capture_redact_headers`
(Authorization, Cookie, Set-Cookie, Proxy-Authorization by default) read "[redacted]".

A held request (`--hold`, mode "hold") says in `routed_to` what its owner decided:
"local" (forwarded to the local target), "cluster" (forwarded to the app in the
cluster), "responded" (answered on the workstation), "dropped" (its caller got a 502
saying so, also in `error`), or "cluster (timed out)" (untouched for the hold's timeout).

Both answers of a mirrored request (mode "mirror"): `status`, `response_headers`,
`response_body`, `duration_ms` are the cluster's (what the caller got); `local_status`
(0: no answer), `local_response_headers`, `local_response_body`, `local_duration_ms`,
`local_error` (why there is no local answer, e.g. "copy dropped: ...") and
`local_truncated` are the workstation's answer to the copy. Outside mirror rows the
local_* columns are empty (0, {}, "", NaN, "", False). `tp_jupyter.compare(df)` reads them.
"""

MIRROR_COLUMNS = ["local_status", "local_response_headers", "local_response_body",
                  "local_duration_ms", "local_error", "local_truncated"]
"""The columns with the workstation's answer of a mirrored request."""

SUMMARY = ["time", "intercept", "method", "path", "status", "duration_ms", "routed_to"]
"""Columns shown when a table is printed or rendered."""

_ROUTED = {mpb.ROUTED_TO_LOCAL: "local", mpb.ROUTED_TO_CLUSTER: "cluster"}
_TARGETS = {"local": dpb.REPLAY_TARGET_LOCAL, "cluster": dpb.REPLAY_TARGET_CLUSTER}


# --- rows -------------------------------------------------------------------------------------

def _text(body: bytes, truncated: bool) -> str:
    text = body.decode("utf-8", errors="replace")
    return text + " [truncated]" if truncated else text


def record_to_row(rec: mpb.TrafficRecord, captured_by: str = "agent") -> dict[str, Any]:
    """One TrafficRecord as a dict with the DataFrame's columns."""
    when = datetime.datetime.fromtimestamp(rec.time.seconds + rec.time.nanos / 1e9,
                                           tz=datetime.UTC)
    return {
        "time": when, "intercept": rec.intercept_name, "method": rec.method,
        "path": rec.path, "status": rec.status, "duration_ms": round(rec.duration_ms, 3),
        "routed_to": _routed(rec),
        "request_headers": {h.name: h.value for h in rec.request_headers},
        "response_headers": {h.name: h.value for h in rec.response_headers},
        "request_body": _text(rec.request_body_prefix, rec.request_body_truncated),
        "response_body": _text(rec.response_body_prefix, rec.response_body_truncated),
        "error": rec.error, "captured_by": captured_by, "id": rec.id,
        "workload": rec.workload, "namespace": rec.namespace, "pod": rec.pod,
        "source": rec.source, "client_session": rec.client_session,
        "request_size": rec.request_size, "response_size": rec.response_size,
        **_origin_and_local(rec),
    }


_HELD = {"forward local": "local", "forward cluster": "cluster", "respond": "responded",
         "drop": "dropped", "timeout": "cluster (timed out)"}


def _routed(rec: mpb.TrafficRecord) -> str:
    """Where the answer came from; for a held request what its owner decided."""
    if rec.mode == mpb.TRAFFIC_MODE_HOLD and rec.hold_decision:
        return _HELD.get(rec.hold_decision, rec.hold_decision)
    return _ROUTED.get(rec.routed_to, "")


_MODES = {mpb.TRAFFIC_MODE_INTERCEPT: "intercept", mpb.TRAFFIC_MODE_MIRROR: "mirror",
          mpb.TRAFFIC_MODE_HOLD: "hold"}


def _origin_and_local(rec: mpb.TrafficRecord) -> dict[str, Any]:
    """The origin columns and, for a mirror row, the workstation's answer (see COLUMNS)."""
    mirrored = rec.HasField("local_answer")
    local = rec.local_answer
    return {
        "mode": _MODES.get(rec.mode, ""), "developer": rec.developer, "port": rec.port,
        "service_port_name": rec.service_port_name,
        "request_truncated": rec.request_body_truncated,
        "response_truncated": rec.response_body_truncated,
        "local_status": local.status,
        "local_response_headers": {h.name: h.value for h in local.response_headers},
        "local_response_body": _text(local.response_body_prefix,
                                     local.response_body_truncated),
        "local_duration_ms": round(local.duration_ms, 3) if mirrored else float("nan"),
        "local_error": local.error, "local_truncated": local.response_body_truncated,
    }


def frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A DataFrame with the traffic columns (also when there are no rows), oldest first."""
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=COLUMNS)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["status"] = df["status"].astype("int64")
    df["duration_ms"] = df["duration_ms"].astype("float64")
    df["local_duration_ms"] = df["local_duration_ms"].astype("float64")
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def frame_from_records(records: Iterable[tuple[mpb.TrafficRecord, str]]) -> pd.DataFrame:
    return frame(record_to_row(rec, by) for rec, by in records)


# --- the daemon -----------------------------------------------------------------------------

def daemon_records(names: Iterable[str] = ()) -> list[mpb.TrafficRecord]:
    """The rows the daemon keeps (none when no daemon runs)."""
    if not paths.socket_path().exists():
        return []
    try:
        with DaemonClient() as client:
            return list(client.watch_traffic(list(names), follow=False))
    except DaemonNotRunning:   # a stale socket: no daemon, no rows
        return []


def kernel_records(names: Iterable[str] = (), every: bool = False) -> list[mpb.TrafficRecord]:
    """Rows of this kernel's cell handlers: failed calls only, or `every` row."""
    from tp_jupyter import handlers  # lazily: it loads httptools
    wanted = set(names)
    return [rec for server in handlers.servers() for rec in server.rows()
            if (every or rec.error) and (not wanted or rec.intercept_name in wanted)]


def traffic(name: str | Iterable[str] | None = None, kernel: bool = False,
            filter: str | None = None, at_least: int = 0) -> pd.DataFrame:
    """Captured exchanges as a DataFrame (one row each, oldest first); see the module doc.

    A `name` that is neither one of your intercepts nor in a kept row is a UsageError
    naming the known ones (a typo would otherwise look like "no traffic yet").
    `filter` (or a `name` that is a filter expression: `traffic("~m POST & ~s 5..")`)
    keeps the matching rows, in mitmproxy's filter syntax (tp_jupyter.filters).
    `at_least` waits (up to the setting notebook.traffic_wait) until that many of the
    chosen intercepts' rows are kept: a row reaches the daemon a moment after its answer
    reached the caller, so a cell that just sent N requests asks for N."""
    from tp_jupyter import filters
    if isinstance(name, str) and filters.looks_like_filter(name):
        name, filter = None, f"({filter}) & ({name})" if filter else name
    chosen = filters.compile_filter(filter) if filter is not None else None
    names = [name] if isinstance(name, str) else list(name or [])
    kept = daemon_records()
    if names:
        check_names(names, kept)
    wanted = set(names)
    if at_least > 0:
        kept = _wait_for_rows(kept, wanted, at_least)
    records = [(r, "agent") for r in kept if not wanted or r.intercept_name in wanted]
    records += [(r, "kernel") for r in kernel_records(names, every=kernel)]
    df = frame_from_records(records)
    return df if chosen is None else df[chosen.mask(df)].reset_index(drop=True)


def _wait_for_rows(kept: list[mpb.TrafficRecord], wanted: set[str], count: int
                   ) -> list[mpb.TrafficRecord]:
    """The daemon's rows once `count` of them belong to `wanted` (all: empty), or when
    notebook.traffic_wait ran out (the table then shows what there is)."""
    s = get_settings().notebook
    deadline = time.monotonic() + s.traffic_wait
    while (sum(1 for r in kept if not wanted or r.intercept_name in wanted) < count
           and time.monotonic() < deadline):
        time.sleep(s.traffic_wait_poll)
        kept = daemon_records()
    return kept


def check_names(names: Iterable[str], kept: Iterable[mpb.TrafficRecord]) -> None:
    """UsageError unless every name is an intercept of yours, of a cell handler here, or
    of a kept row (an intercept left since keeps its rows)."""
    from tp_jupyter import handlers  # lazily: it loads httptools
    known = {r.intercept_name for r in kept} | current_intercepts()
    known |= {server.label for server in handlers.servers()}
    known.discard("")
    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    what = f"no intercept named {', '.join(map(repr, unknown))}"
    if known:
        raise UsageError(f"{what}; the known ones are {', '.join(sorted(known))}")
    raise UsageError(f"{what}; there is none yet: start one with `tp intercept WORKLOAD -p "
                     "PORT`")


def current_intercepts() -> set[str]:
    """The names of the daemon's intercepts (none when no daemon runs)."""
    if not paths.socket_path().exists():
        return set()
    try:
        with DaemonClient() as client:
            return {ic.spec.name for ic in client.status().intercepts}
    except DaemonNotRunning:
        return set()


# --- replay ---------------------------------------------------------------------------------

def _row_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, mpb.TrafficRecord):
        return record_to_row(row, "kernel" if row.id.startswith("kernel-") else "agent")
    if hasattr(row, "columns"):   # a DataFrame: only a one-row one will do
        if len(row) != 1:
            raise UsageError(f"replay() takes one row, not a table of {len(row)}: pass "
                             "df.iloc[i]")
        row = row.iloc[0]
    if hasattr(row, "to_dict"):   # a pandas Series (df.iloc[i])
        return dict(row.to_dict())
    if isinstance(row, Mapping):
        return dict(row)
    raise UsageError(f"replay() takes a traffic row (df.iloc[i]), not a {type(row).__name__}")


def replay(row: Any, to: str = "local", headers: Mapping[str, str] | None = None,
           body: bytes | str | None = None, *, method: str | None = None,
           path: str | None = None, intercept: str | None = None) -> pd.Series:
    """Send a captured request again; returns the new exchange as a row (a Series).

    `to`: "local" (the intercepting code: the cell handler or local port) or "cluster"
    (the app container in the cluster). Edits: `method`, `path` (with the query) and
    `body` replace the captured ones, `headers` replace or add request headers. The daemon
    sends it (its `Replay` of a row it keeps; a row of a cell handler is replayed as the
    agent's row of the same request; a row read from a HAR file is sent as it is, through
    the intercept it names, or `intercept`, or your only one).

    (`tp_jupyter.replay` also takes a DataFrame of several rows: tp_jupyter.debugger.)"""
    d = _row_dict(row)
    if to not in _TARGETS:
        raise UsageError(f"replay to {to!r}: use to='local' or to='cluster'")
    traffic_id = str(d.get("id", ""))
    given = None
    if d.get("captured_by") == "har" or intercept:
        from tp_jupyter import har
        traffic_id, given = "", har.request_record(d, intercept)
    elif d.get("captured_by") == "kernel" or traffic_id.startswith("kernel-"):
        traffic_id = _agent_row_of(d)
    request = dpb.ReplayRequest(
        traffic_id=traffic_id, target=_TARGETS[to], method=method or "", path=path or "",
        header_overrides=[mpb.Header(name=k, value=v) for k, v in (headers or {}).items()])
    if given is not None:
        request.request.CopyFrom(given)
    if body is not None:
        request.body = body.encode() if isinstance(body, str) else body
        request.has_body = True
    with DaemonClient() as client:
        result = client.replay(request)
    return frame([record_to_row(result.record, "agent")]).iloc[0]


def _agent_row_of(kernel_row: Mapping[str, Any]) -> str:
    """The id of the daemon's row of the request a cell handler answered.

    Replay resends a row's method, path, headers and body, so any agent row of the same
    intercept with the same method, path and body replays the same request; among those,
    the one sharing most of the kernel row's headers (the agent forwards them unchanged),
    then the nearest in time."""
    header_pairs = {(k.lower(), v) for k, v in dict(kernel_row.get("request_headers") or {}
                                                     ).items()}
    when = kernel_row.get("time")
    best: tuple[int, float, str] | None = None
    for rec in daemon_records([str(kernel_row.get("intercept") or "")]):
        candidate = record_to_row(rec)
        if any(candidate[k] != kernel_row.get(k) for k in ("method", "path", "request_body")):
            continue
        shared = len(header_pairs & {(h.name.lower(), h.value) for h in rec.request_headers})
        gap = abs((candidate["time"] - when).total_seconds()) if when is not None else 0.0
        if best is None or (-shared, gap) < (-best[0], best[1]):
            best = (shared, gap, rec.id)
    if best is None:
        raise UsageError("the daemon keeps no agent row of this request (it was sent to the "
                         "cell handler directly, or the rows were dropped); replay a row with "
                         "captured_by == 'agent'")
    return best[2]


# --- the live feed --------------------------------------------------------------------------

class TrafficFeed:
    """Live rows for the widget: the daemon's stream (reopened when it ends) + kernel rows.

    `start()` runs one named thread, `tp-traffic-watch`; `stop()` cancels the stream and
    joins it. Listeners get each new row (as a dict) on that thread or the handler loop.
    """

    def __init__(self, names: Iterable[str] = (), limit: int = 1000) -> None:
        self.names = list(names)
        self.rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.last_error = ""
        self.worker = Worker("tp-traffic-watch", self._run)
        self._stop = self.worker.stopping
        self._stream: TrafficStream | None = None
        self._lock = threading.Lock()
        self._seen_servers: set[int] = set()

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(wake=self._cancel_stream)

    def _cancel_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def add(self, rec: mpb.TrafficRecord, captured_by: str) -> None:
        row = record_to_row(rec, captured_by)
        with self._lock:
            self.rows.append(row)
        for fn in list(self.listeners):
            try:
                fn(row)
            except Exception:
                log.exception("a traffic feed listener failed")

    def watch_server(self, server: handlers.HandlerServer) -> None:
        """Also show the failed calls of a cell handler (with the traceback)."""
        if id(server) in self._seen_servers:
            return
        self._seen_servers.add(id(server))
        shown: set[str] = set()

        def on_row(rec: mpb.TrafficRecord) -> None:
            if rec.error and rec.id not in shown:
                shown.add(rec.id)
                self.add(rec, "kernel")

        server.add_listener(on_row)
        for rec in server.rows():   # rows from before the panel noticed this server
            on_row(rec)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.rows)

    def _run(self) -> None:
        from tp_jupyter import handlers  # lazily: it loads httptools
        s = get_settings().notebook
        history = True
        while not self._stop.is_set():
            for server in handlers.servers():
                self.watch_server(server)
            try:
                self._follow(history)
                history = False   # rows already shown are not asked for again
                self.last_error = ""
            except TpError as e:
                self.last_error = str(e)
            except Exception as e:   # keep the widget alive, but say why rows stopped
                log.exception("the traffic watch failed")
                self.last_error = f"traffic watch failed: {e}"
            self._stop.wait(s.watch_retry_interval)

    def _follow(self, history: bool) -> None:
        if not paths.socket_path().exists():
            return
        with DaemonClient() as client:
            self._stream = client.watch_traffic(self.names, history=history, follow=True)
            try:
                if self._stop.is_set():
                    return
                for rec in self._stream:
                    self.add(rec, "agent")
            finally:
                self._stream = None


# --- `tp traffic` -----------------------------------------------------------------------------

@dataclass(repr=False)
class TrafficTable(Rendered):
    """The result of `tp traffic`: renders the summary columns as text or HTML."""

    frame: Any   # pandas.DataFrame
    output: str | None = None
    note: str = ""
    columns: list[str] = field(default_factory=lambda: list(SUMMARY))

    def shown(self) -> Any:
        """The summary columns as shown: times of day (UTC) and durations in ms as text.

        The DataFrame itself keeps real timestamps and floats for analysis."""
        shown = self.frame[self.columns].copy()
        if "time" in shown:
            shown["time"] = shown["time"].map(lambda t: t.strftime("%H:%M:%S.%f")[:-3])
        if "duration_ms" in shown:
            shown["duration_ms"] = shown["duration_ms"].map(lambda v: f"{v:.1f} ms")
        return shown.rename(columns={"duration_ms": "duration"})

    def to_dict(self) -> dict[str, Any]:
        """`--format json|yaml` (schema: tp_jupyter/schemas/traffic.json): every column
        of every row, times as ISO 8601 (UTC), missing values as null."""
        import json

        rows = json.loads(self.frame.to_json(orient="records", date_format="iso",
                                             date_unit="ms"))
        return {"count": len(rows), "rows": rows, "output": self.output,
                "note": self.note or None}

    def __str__(self) -> str:
        if self.frame.empty:
            text = "No traffic captured yet"
        else:
            text = self.shown().to_string(index=False)
        return f"{text}\n{self.note}" if self.note else text

    def _repr_html_(self) -> str:
        if self.frame.empty:
            body = "<i>No traffic captured yet</i>"
        else:
            body = self.shown().to_html(index=False, classes="tp-traffic", border=0)
        note = f"<div>{html.escape(self.note)}</div>" if self.note else ""
        return body + note


def _traffic_command(args: argparse.Namespace) -> Any:
    if args.at_least < 0:
        raise UsageError("--at-least takes a count of rows (0 or more)")
    df = traffic(args.name or None, kernel=args.kernel, filter=args.filter,
                 at_least=args.at_least)
    if args.format in ("har", "csv", "curl"):
        from tp_jupyter import har
        return har.exported(df, args.format, args.output,
                            in_notebook=getattr(args, "in_notebook", False))
    table = TrafficTable(df, args.output)
    if args.output and not getattr(args, "in_notebook", False):
        df.to_csv(args.output, index=False)
        table.note = f"Wrote {len(df)} rows to {args.output}"
    elif args.output:
        table.note = f"Stored {len(df)} rows in the variable {args.output}"
    return table


def register(sub: Any) -> None:
    """Add `tp traffic` to the `tp` grammar."""
    p = sub.add_parser("traffic", help="show, filter (--filter '~m POST & ~s 5..') and "
                                       "export (--format har|csv|curl) captured traffic",
                       description="Captured HTTP exchanges of your intercepts, oldest first. "
                                   "In Python: tp_jupyter.traffic(), filter_traffic(), "
                                   "to_har(), read_har(), to_curl(), to_python(), replay(), "
                                   "to_pytest().")
    p.add_argument("name", nargs="*", metavar="NAME",
                   help="only these intercepts (default: all of yours)")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="in a notebook: store the DataFrame in the variable VAR; in a "
                        "terminal: write it to the file VAR (CSV, or the --format har|csv|curl)")
    p.add_argument("--kernel", action="store_true",
                   help="also every exchange answered by cell handlers in this kernel")
    p.add_argument("--at-least", type=int, default=0, metavar="N",
                   help="first wait (up to notebook.traffic_wait seconds) until N rows of "
                        "these intercepts are kept (rows arrive just after the answers)")
    p.add_argument("--filter", metavar="EXPR",
                   help="only rows matching EXPR, in mitmproxy's filter syntax: ~m ~p ~u ~s "
                        "~c ~h ~hq ~hs ~b ~bq ~bs, ! & | and parentheses, e.g. "
                        "'~m POST & ~p ^/books & ~s 5..'")
    output.add_format(p, extra=("har", "csv", "curl"))
    p.set_defaults(func=_traffic_command)

