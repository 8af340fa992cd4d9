"""Traffic as data: DataFrames from TrafficRecords, `tp_jupyter.traffic()`, replay."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from tp_protocol import manager_pb2 as mpb

import tp_jupyter
from tp_jupyter import handlers
from tp_jupyter import traffic_data as traffic_mod
from tp_jupyter.errors import UsageError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def stop_servers() -> Iterator[None]:
    yield
    handlers.shutdown()


def record(i: int, path: str = "/color", status: int = 200, ms: float = 5.0) -> mpb.TrafficRecord:
    rec = mpb.TrafficRecord(
        id=f"pod-1:{i}", intercept_name="dps-demo", workload="dps", namespace="demo",
        method="GET", path=path, status=status, duration_ms=ms,
        routed_to=mpb.ROUTED_TO_LOCAL if i % 2 else mpb.ROUTED_TO_CLUSTER,
        request_headers=[mpb.Header(name="x-dev", value="me")],
        response_headers=[mpb.Header(name="content-type", value="text/plain")],
        request_body_prefix=b"", response_body_prefix=b"green" * 3,
        response_body_truncated=i == 3)
    rec.time.FromSeconds(1_700_000_000 + i)
    return rec


def test_records_become_one_row_per_exchange_with_the_documented_columns() -> None:
    df = traffic_mod.frame_from_records([(record(i), "agent") for i in (3, 1, 2)])
    assert list(df.columns) == traffic_mod.COLUMNS
    assert list(df["id"]) == ["pod-1:1", "pod-1:2", "pod-1:3"]   # oldest first
    assert str(df["time"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(df["time"].dtype)
    assert df.loc[0, "routed_to"] == "local" and df.loc[1, "routed_to"] == "cluster"
    assert df.loc[0, "request_headers"] == {"x-dev": "me"}
    assert df.loc[2, "response_body"].endswith("[truncated]")
    assert df["duration_ms"].dtype == "float64" and df["status"].dtype == "int64"


def test_an_empty_table_still_has_the_columns() -> None:
    df = tp_jupyter.traffic()
    assert df.empty and list(df.columns) == traffic_mod.COLUMNS


def test_latency_by_path_is_one_groupby_away() -> None:
    recs = [record(1, "/a", ms=10), record(2, "/a", ms=30), record(3, "/b", 500, ms=7)]
    df = traffic_mod.frame_from_records([(r, "agent") for r in recs])
    by_path = df.groupby("path")["duration_ms"].mean()
    assert by_path.to_dict() == {"/a": 20.0, "/b": 7.0}
    assert list(df[df.status >= 500]["path"]) == ["/b"]


def test_tp_jupyter_traffic_includes_kernel_rows_on_request() -> None:
    server = handlers.HandlerServer(lambda req: "ok", "web-demo")
    urllib.request.urlopen(server.url + "/ok", timeout=5).read()
    assert tp_jupyter.traffic().empty   # a successful kernel row is the agent's to report
    df = tp_jupyter.traffic(kernel=True)
    assert list(df["path"]) == ["/ok"] and list(df["captured_by"]) == ["kernel"]
    with pytest.raises(UsageError, match="no intercept named 'other'"):
        tp_jupyter.traffic("other", kernel=True)   # an unknown name is a mistake, not empty


def test_replay_refuses_what_it_cannot_do_with_a_fix() -> None:
    server = handlers.HandlerServer(lambda req: "ok", "web-demo")
    urllib.request.urlopen(server.url + "/", timeout=5).read()
    df = tp_jupyter.traffic(kernel=True)
    for to in ("local", "cluster"):   # sent to the handler directly: no agent row
        with pytest.raises(UsageError, match="the daemon keeps no agent row of this request"):
            tp_jupyter.replay(df.iloc[0], to=to)
    with pytest.raises(UsageError, match="the daemon keeps no agent row of this request"):
        tp_jupyter.replay(pd.concat([df, df]), to="local")   # many rows: each one replayed
    with pytest.raises(UsageError, match="use to='local' or to='cluster'"):
        tp_jupyter.replay(df.iloc[0], to="http://127.0.0.1:8080")
    with pytest.raises(UsageError, match=r"takes a traffic row \(df\.iloc\[i\]\)"):
        tp_jupyter.replay(42)


def test_agent_rows_are_replayed_through_the_daemon_which_must_be_running() -> None:
    from tp_jupyter.errors import DaemonError

    with pytest.raises(DaemonError, match="not running"):
        tp_jupyter.replay(traffic_mod.record_to_row(record(1)), to="cluster")


def test_the_traffic_table_renders_as_text_and_html() -> None:
    df = traffic_mod.frame_from_records([(record(1), "agent")])
    table = traffic_mod.TrafficTable(df)
    assert "/color" in str(table) and "dps-demo" in str(table)
    assert "<table" in table._repr_html_() and "tp-traffic" in table._repr_html_()


def test_tp_traffic_in_a_terminal_writes_csv(tmp_path: Any) -> None:
    from tp_jupyter import cli

    out = tmp_path / "rows.csv"
    args = cli.build_parser().parse_args(["traffic", "-o", str(out)])
    table = args.func(args)
    assert out.read_text().startswith("time,intercept,method,path")
    assert f"Wrote 0 rows to {out}" in str(table)
