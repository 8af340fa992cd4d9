"""The notebook debugger's entry points that join the traffic table with HAR and replay.

    replay(row | df, to=..., method=, path=, headers=, body=, intercept=)
        `tp_jupyter.replay`: one row (a Series, dict, one-row DataFrame) -> the new
        exchange as a Series (tp_jupyter.traffic_data.replay); a DataFrame of several rows
        -> `replay_many`
    replay_many(df, to=..., **edits) -> DataFrame
        every row replayed (same edits), one result row per replay with the new exchange's
        columns after `replay_of` (the replayed row's id), `original_status` and
        `status_changed`. A replay the daemon fails is a row with `error` set, so one bad
        row does not lose the others' results; a usage mistake is raised once.
    read_har(path) -> DataFrame
        `tp_jupyter.read_har`: a HAR file as a traffic DataFrame (tp_jupyter.har)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tp_jupyter import har, traffic_data
from tp_jupyter.errors import TpError, UsageError

if TYPE_CHECKING:
    import pandas as pd

RESULT_COLUMNS = ["replay_of", "original_status", "status_changed"]
"""Columns `replay_many` adds in front of the new exchange's columns."""


def replay(row: Any, to: str = "local", headers: Mapping[str, str] | None = None,
           body: bytes | str | None = None, *, method: str | None = None,
           path: str | None = None, intercept: str | None = None) -> Any:
    """Send captured requests again, with edits; see `tp_jupyter.traffic_data.replay` for
    one row. A DataFrame of several rows returns a DataFrame (`replay_many`)."""
    if hasattr(row, "columns") and len(row) != 1:
        return replay_many(row, to=to, headers=headers, body=body, method=method, path=path,
                           intercept=intercept)
    return traffic_data.replay(row, to, headers, body, method=method, path=path,
                               intercept=intercept)


def read_har(path: str | Path) -> pd.DataFrame:
    """A HAR file (ours, mitmproxy's, a browser's) as a traffic DataFrame, one row per
    entry, `captured_by == "har"`; `replay(row, to=...)` sends its request again."""
    return traffic_data.frame(har.har_rows(path))


def replay_many(df: pd.DataFrame, *, to: str = "local", **edits: Any) -> pd.DataFrame:
    """Replay every row of `df` (oldest first) with the same edits; see the module doc."""
    import pandas as pd

    if to not in ("local", "cluster"):
        raise UsageError(f"replay to {to!r}: use to='local' or to='cluster'")
    results: list[dict[str, Any]] = []
    for _, row in df.iterrows():
        try:
            new = dict(traffic_data.replay(row, to=to, **edits).to_dict())
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
    out = (pd.concat([traffic_data.frame([r]) for r in results], ignore_index=True)
           if results else traffic_data.frame([]))
    out.insert(0, "replay_of", [r["replay_of"] for r in results])
    out.insert(1, "original_status", pd.Series([r["original_status"] for r in results],
                                               dtype="int64"))
    out.insert(2, "status_changed", out["status"] != out["original_status"])
    return out[[*RESULT_COLUMNS, *traffic_data.COLUMNS]]
