"""Replay of many rows, and rows the daemon keeps no copy of (read from a HAR file).

    replay_many(df, to=..., method=, path=, headers=, body=) -> DataFrame
        every row replayed (same edits); one result row per replay with the new exchange's
        columns plus `replay_of` (the replayed row's id), `original_status` and
        `status_changed`. A replay that fails is a row with `error` set, so one bad row
        does not lose the others' results.
    request_record(row, intercept) -> TrafficRecord
        a row's request as the daemon's Replay takes it (`ReplayRequest.request`).

`tp_jupyter.replay(df)` calls `replay_many` for a DataFrame of several rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tp_protocol import manager_pb2 as mpb

from tp_jupyter.errors import TpError, UsageError
from tp_jupyter.har import body_text

if TYPE_CHECKING:
    import pandas as pd

RESULT_COLUMNS = ["replay_of", "original_status", "status_changed"]
"""Columns `replay_many` adds in front of the new exchange's columns."""


def request_record(row: Mapping[str, Any], intercept: str | None = None
                   ) -> mpb.TrafficRecord:
    """The request of a row as a TrafficRecord (method, path, headers, body prefix, and
    the intercept: `intercept`, or the row's, or blank for the daemon's only one)."""
    body, truncated = body_text(row, "request")
    headers = row.get("request_headers")
    return mpb.TrafficRecord(
        id=str(row.get("id") or ""), intercept_name=intercept or str(row.get("intercept")
                                                                      or ""),
        workload="" if intercept else str(row.get("workload") or ""),
        namespace="" if intercept else str(row.get("namespace") or ""),
        method=str(row.get("method") or "GET"), path=str(row.get("path") or "/"),
        request_headers=[mpb.Header(name=str(k), value=str(v))
                         for k, v in (headers.items() if isinstance(headers, Mapping)
                                      else ())],
        request_body_prefix=body.encode(), request_body_truncated=truncated)


def replay_many(df: pd.DataFrame, *, to: str = "local", **edits: Any) -> pd.DataFrame:
    """Replay every row of `df` (oldest first) with the same edits; see the module doc."""
    import pandas as pd

    from tp_jupyter.traffic_data import COLUMNS, frame, replay

    if to not in ("local", "cluster"):
        raise UsageError(f"replay to {to!r}: use to='local' or to='cluster'")
    results: list[dict[str, Any]] = []
    for _, row in df.iterrows():
        try:
            new = dict(replay(row, to=to, **edits).to_dict())
        except UsageError:
            raise   # the same mistake for every row: say it once
        except TpError as e:
            new = {c: row.get(c) for c in ("intercept", "method", "path", "request_headers",
                                           "request_body", "workload", "namespace")}
            new.update(time=pd.Timestamp.now(tz="UTC"), status=0, duration_ms=0.0,
                       error=str(e), captured_by="agent", routed_to=to)
        new.update(replay_of=row.get("id"), original_status=int(row.get("status") or 0))
        results.append(new)
    # one frame per result, concatenated: frame() sorts by time, the order here is df's
    out = (pd.concat([frame([r]) for r in results], ignore_index=True) if results
           else frame([]))
    out.insert(0, "replay_of", [r["replay_of"] for r in results])
    out.insert(1, "original_status", pd.Series([r["original_status"] for r in results],
                                               dtype="int64"))
    out.insert(2, "status_changed", out["status"] != out["original_status"])
    return out[[*RESULT_COLUMNS, *COLUMNS]]
