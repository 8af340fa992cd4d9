"""compare(df): both answers of mirror rows, JSON-aware, with ignore rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tp_protocol import manager_pb2 as pb

from tp_jupyter import compare
from tp_jupyter.errors import UsageError
from tp_jupyter.traffic_data import COLUMNS, frame, record_to_row


def mirror_row(cluster: Any, local: Any, *, status: int = 200, local_status: int = 200,
               headers: dict[str, str] | None = None,
               local_headers: dict[str, str] | None = None, error: str = "") -> dict[str, Any]:
    def body(v: Any) -> bytes:
        return v if isinstance(v, bytes) else json.dumps(v).encode()

    rec = pb.TrafficRecord(
        id="web-1-m1", intercept_name="wt", method="GET", path="/books", status=status,
        mode=pb.TRAFFIC_MODE_MIRROR, developer="alice", routed_to=pb.ROUTED_TO_CLUSTER,
        response_body_prefix=body(cluster), duration_ms=1.5,
        response_headers=[pb.Header(name=k, value=v) for k, v in (headers or {}).items()])
    rec.time.GetCurrentTime()
    rec.local_answer.CopyFrom(pb.MirrorAnswer(
        status=local_status, response_body_prefix=body(local), duration_ms=2.5, error=error,
        response_headers=[pb.Header(name=k, value=v)
                          for k, v in (local_headers or {}).items()]))
    return record_to_row(rec)


def test_a_mirror_row_carries_both_answers_in_the_documented_columns() -> None:
    row = mirror_row({"a": 1}, {"a": 2}, local_status=201)
    df = frame([row])
    assert list(df.columns) == COLUMNS
    r = df.iloc[0]
    assert (r["mode"], r["developer"], r["status"], r["local_status"]) == (
        "mirror", "alice", 200, 201)
    assert (r["response_body"], r["local_response_body"]) == ('{"a": 1}', '{"a": 2}')
    assert (r["duration_ms"], r["local_duration_ms"]) == (1.5, 2.5)


def test_equal_json_answers_are_the_same_whatever_the_key_order_and_spacing() -> None:
    rows = [mirror_row(b'{"a": 1, "b": [1, 2]}', b'{"b":[1,2],"a":1}')]
    result = compare(frame(rows))
    assert result["same"].tolist() == [True] and result["differences"][0] == []


def test_json_differences_are_named_by_their_jsonpath() -> None:
    result = compare(frame([mirror_row(
        {"items": [{"id": 1, "price": 3}], "meta": {"n": 1}, "gone": 1},
        {"items": [{"id": 1, "price": 4}], "meta": {"n": 1}, "new": 2}, local_status=500)]))
    assert result["differences"][0] == [
        "status: 200 (cluster) != 500 (local)",
        "body $.gone: only in the cluster's answer",
        "body $.items[0].price: 3 (cluster) != 4 (local)",
        "body $.new: only in the local answer"]
    assert result["same"].tolist() == [False]


def test_ignore_rules_by_jsonpath_and_header_name_remove_noisy_fields() -> None:
    row = mirror_row({"at": "12:00", "items": [{"id": 1, "rid": "x"}], "v": 1},
                     {"at": "12:01", "items": [{"id": 1, "rid": "y"}], "v": 1},
                     headers={"Date": "a", "X-Request-Id": "1", "Content-Type": "json"},
                     local_headers={"date": "b", "x-request-id": "2", "content-type": "json"})
    noisy = compare(frame([row]))
    assert noisy["differences"][0] == [
        "header x-request-id: '1' (cluster) != '2' (local)",
        "body $.at: \"12:00\" (cluster) != \"12:01\" (local)",
        "body $.items[0].rid: \"x\" (cluster) != \"y\" (local)"]
    quiet = compare(frame([row]), ignore=["$.at", "$..rid"], ignore_headers="X-Request-ID")
    assert quiet["same"].tolist() == [True]


def test_text_bodies_and_missing_local_answers_are_differences_that_say_why() -> None:
    rows = [mirror_row(b"green", b"blue"),
            mirror_row(b"green", b"", local_status=0, error="copy dropped: the mirror's "
                       "queue was full")]
    result = compare(frame(rows))
    assert result["differences"][0] == [
        "body: text differs from character 0 (5 characters in the cluster's answer, 4 in "
        "the local one)"]
    assert result["differences"][1] == [
        "no local answer: copy dropped: the mirror's queue was full"]
    assert len(compare(frame(rows), only_differences=True)) == 2


def test_rows_that_are_not_mirrored_are_left_out() -> None:
    rec = pb.TrafficRecord(id="x", method="GET", path="/", status=200)
    rec.time.GetCurrentTime()
    assert compare(frame([record_to_row(rec)])).empty


@pytest.mark.parametrize("bad", ["$.[", "$..]", "not a ( path"])
def test_a_bad_jsonpath_is_a_one_line_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        compare(frame([mirror_row({}, {})]), ignore=[bad])
    assert "\n" not in str(err.value) and "JSONPath" in str(err.value)


def test_something_other_than_a_traffic_frame_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="traffic DataFrame"):
        compare([1, 2])  # type: ignore[arg-type]
