"""`compare(df)`: where your code would answer differently from the cluster.

Each mirror row of a traffic DataFrame (`mode == "mirror"`, see
`tp_jupyter.traffic_data.COLUMNS`) carries the cluster's answer (`status`,
`response_headers`, `response_body`, `duration_ms`) and the workstation's (`local_*`).
`compare` lines them up, one row per mirrored request:

    compare(df, ignore=["$.generated_at", "$..request_id"], ignore_headers=["etag"])

- bodies that both parse as JSON are compared as data (key order and spacing do not
  count); each difference is named by its JSONPath (`$.items[2].price`). `ignore` takes
  JSONPath expressions (jsonpath-ng's extended syntax: `$..id`, `$.items[*].updated`);
  what they match is removed from both sides first;
- other bodies are compared as text;
- headers are compared by name (case-insensitive), except `ignore_headers` and the
  always-noisy ones in `NOISY_HEADERS` (`Date`, `Server`, framing); values recorded as
  "[redacted]" are equal;
- a copy without a local answer (dropped, timed out, the local side down) is a
  difference that says why.

The result has `same` (bool) and `differences` (a list of one-line strings) next to the
request's identity and both statuses and durations; `only_differences=True` keeps the
rows that differ. Errors: a bad JSONPath or a frame that is not a traffic DataFrame is a
`UsageError` that says what to pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tp_jupyter import bodydiff
from tp_jupyter.bodydiff import NOT_JSON
from tp_jupyter.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

NOISY_HEADERS = frozenset({"date", "server", "content-length", "connection", "keep-alive",
                           "transfer-encoding", "x-tp-mirror"})
"""Headers compare() never counts: they differ between any two servers or answers."""

RESULT_COLUMNS = ["time", "intercept", "method", "path", "status", "local_status", "same",
                  "differences", "duration_ms", "local_duration_ms", "developer", "id"]
"""Columns of compare()'s DataFrame, in order."""

_TRUNCATED = " [truncated]"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _line(path: str, kind: bodydiff.Kind, cluster: Any, local: Any) -> str:
    if kind == "missing":
        return f"body {path}: only in the cluster's answer"
    if kind == "extra":
        return f"body {path}: only in the local answer"
    if kind == "length":
        return (f"body {path}: {len(cluster)} items in the cluster's answer, "
                f"{len(local)} in the local one")
    return f"body {path}: {_short(cluster)} (cluster) != {_short(local)} (local)"


def json_differences(cluster: Any, local: Any, path: str = "$") -> list[str]:
    """Differences between two JSON values, each named by its JSONPath."""
    return [_line(*found) for found in bodydiff.walk(cluster, local, path, sort_keys=True)]


def body_differences(cluster: str, local: str, ignore: Sequence[str]) -> list[str]:
    """Body differences: JSON-aware when both parse, else as text. `ignore`: JSONPath
    rules whose matches are removed from both sides first."""
    cut = cluster.endswith(_TRUNCATED) or local.endswith(_TRUNCATED)
    cluster, local = cluster.removesuffix(_TRUNCATED), local.removesuffix(_TRUNCATED)
    a, b = (NOT_JSON, NOT_JSON) if cut else (bodydiff.decoded(cluster),
                                             bodydiff.decoded(local))
    if a is not NOT_JSON and b is not NOT_JSON:
        return json_differences(bodydiff.without(a, ignore), bodydiff.without(b, ignore))
    if cluster == local:
        return []
    at = next((i for i, (x, y) in enumerate(zip(cluster, local, strict=False)) if x != y),
              min(len(cluster), len(local)))
    note = " (bodies truncated: only the kept prefixes were compared)" if cut else ""
    return [f"body: text differs from character {at} ({len(cluster)} characters in the "
            f"cluster's answer, {len(local)} in the local one){note}"]


def header_differences(cluster: Mapping[str, str], local: Mapping[str, str],
                       ignore: Iterable[str] = ()) -> list[str]:
    skip = NOISY_HEADERS | {h.lower() for h in ignore}
    a = {k.lower(): v for k, v in cluster.items() if k.lower() not in skip}
    b = {k.lower(): v for k, v in local.items() if k.lower() not in skip}
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(f"header {name}: only in the cluster's answer")
        elif name not in a:
            out.append(f"header {name}: only in the local answer")
        elif a[name] != b[name]:
            out.append(f"header {name}: {a[name]!r} (cluster) != {b[name]!r} (local)")
    return out


def row_differences(row: Mapping[str, Any], ignore: Sequence[str],
                    ignore_headers: Iterable[str] = ()) -> list[str]:
    """What differs between the cluster's and the local answer of one mirror row."""
    if row.get("local_error") or not row.get("local_status"):
        return [f"no local answer: {row.get('local_error') or 'none recorded'}"]
    out = []
    if int(row["status"]) != int(row["local_status"]):
        out.append(f"status: {row['status']} (cluster) != {row['local_status']} (local)")
    out += header_differences(row.get("response_headers") or {},
                              row.get("local_response_headers") or {}, ignore_headers)
    out += body_differences(str(row.get("response_body") or ""),
                            str(row.get("local_response_body") or ""), ignore)
    return out


def compare(df: pd.DataFrame, ignore: str | Iterable[str] | None = None,
            ignore_headers: str | Iterable[str] | None = None, *,
            only_differences: bool = False) -> pd.DataFrame:
    """One row per mirrored request of `df` with `same` and `differences`; see the module."""
    import pandas as pd

    if not hasattr(df, "columns") or not {"mode", "local_status"} <= set(df.columns):
        raise UsageError("compare() takes a traffic DataFrame: pass tp_jupyter.traffic() "
                         "(or %tp traffic -o VAR) of a wiretap")
    paths = [ignore] if isinstance(ignore, str) else list(ignore or [])
    bodydiff.check_rules(paths)
    headers = [ignore_headers] if isinstance(ignore_headers, str) else list(
        ignore_headers or [])
    rows = []
    for _, r in df[df["mode"] == "mirror"].iterrows():
        row = r.to_dict()
        differences = row_differences(row, paths, headers)
        if only_differences and not differences:
            continue
        rows.append({**{c: row.get(c) for c in RESULT_COLUMNS},
                     "same": not differences, "differences": differences})
    result = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    result["same"] = result["same"].astype("bool")
    return result.reset_index(drop=True)
