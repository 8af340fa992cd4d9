"""JSON-aware body comparison with ignore rules, and the pytest file to_pytest writes.

Running the generated file against real code is the sandbox test's part
(test_sandbox_export.py): its tests replay through the daemon and an intercept."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tp_jupyter
from tp_jupyter import bodydiff, testgen
from tp_jupyter.errors import UsageError

pytestmark = pytest.mark.timeout(60)


def test_json_bodies_are_compared_as_data_and_each_difference_named_by_its_path() -> None:
    same = bodydiff.differences('{"a": 1, "b": [1, 2]}', '{ "b": [1,2], "a": 1 }')
    assert same == []
    found = bodydiff.differences(
        '{"id": 7, "title": "Dune", "tags": ["sf"], "by": {"name": "Herbert"}}',
        '{"id": 8, "title": "DUNE", "tags": ["sf", "classic"], "extra": true, "by": {}}')
    assert found == ["$.id: expected 7, got 8", "$.title: expected 'Dune', got 'DUNE'",
                     "$.tags: 2 items, expected 1",
                     "$.by.name: missing (expected 'Herbert')", "$.extra: unexpected True"]
    assert bodydiff.differences("1", "1.0") == ["$: expected 1, got 1.0"]


def test_ignore_rules_drop_noisy_fields_anywhere_by_jsonpath() -> None:
    expected = '{"id": 1, "at": "10:00", "items": [{"ts": 1, "n": 2}], "meta": {"at": "x"}}'
    actual = '{"id": 2, "at": "10:05", "items": [{"ts": 9, "n": 2}], "meta": {"at": "y"}}'
    assert bodydiff.differences(expected, actual, ["$.id", "$..at", "$.items[*].ts"]) == []
    assert bodydiff.differences(expected, actual, ["$..at", "$.items[*].ts"]) == [
        "$.id: expected 1, got 2"]


def test_text_bodies_are_compared_as_text() -> None:
    assert bodydiff.differences("hello", "hello") == []
    assert bodydiff.differences("hello", "bye") == ["expected the text 'hello', got 'bye'"]
    with pytest.raises(AssertionError, match=r"the body differs from the captured one:\n  "
                                             r"expected the text 'a', got 'b'"):
        bodydiff.assert_same("a", "b")


def test_an_invalid_ignore_rule_is_one_line() -> None:
    with pytest.raises(UsageError, match=r"invalid ignore rule '\$\.\[' .*give a JSONPath "
                                         r"such as '\$\.id'"):
        bodydiff.differences("{}", "{}", ["$.["])


def _row(method: str, path: str, status: int, body: str, answer: str, *,
         intercept: str = "books") -> dict[str, Any]:
    return {"time": pd.Timestamp.now(tz="UTC"), "intercept": intercept, "method": method,
            "path": path, "status": status,
            "request_headers": {"Host": "books.demo", "Content-Type": "application/json",
                                "Content-Length": str(len(body))},
            "response_headers": {}, "request_body": body, "response_body": answer}


def test_the_generated_file_has_one_readable_test_per_exchange(tmp_path: Path) -> None:
    rows = [_row("POST", "/books", 201, '{"title": "Dune"}', '{"id": 3, "title": "Dune"}'),
            _row("GET", "/books/3?full=1", 200, "", '{"id": 3, "title": "Dune"}'),
            _row("GET", "/big", 200, "", "abc [truncated]"),
            _row("GET", "/hang", 0, "", ""),
            _row("POST", "/upload", 200, "xxx [truncated]", "ok")]
    made = tp_jupyter.to_pytest(rows, tmp_path / "test_books.py", against="cluster",
                                ignore=["$.id"])
    assert made.tests == ["test_01_post_books_answers_201",
                          "test_02_get_books_3_answers_200", "test_03_get_big_answers_200"]
    assert str(made) == (f"Wrote 3 tests to {tmp_path / 'test_books.py'} (left out: GET /hang "
                         "(no answer); POST /upload (request body truncated at capture))")
    text = (tmp_path / "test_books.py").read_text()
    ast.parse(text)
    assert 'AGAINST = os.environ.get("TP_TEST_AGAINST", \'cluster\')' in text
    assert "INTERCEPT = 'books'" in text and "IGNORE = ['$.id']" in text
    assert "def test_01_post_books_answers_201() -> None:\n    response = send(\n" in text
    assert ("    check_response(\n        response,\n        status=201,\n"
            "        body={'title': 'Dune'},\n        ignore=IGNORE,\n    )") in text
    assert "body_prefix='abc'" in text            # a truncated answer is checked as a prefix
    assert "Content-Length" not in text           # framing is the replay's to compute


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: tp_jupyter.to_pytest([], p), "no rows to turn into tests"),
    (lambda p: tp_jupyter.to_pytest([_row("GET", "/", 200, "", "")], p, against="prod"),
     "use 'local' or 'cluster'"),
    (lambda p: tp_jupyter.to_pytest([_row("GET", "/", 200, "", "")], p, ignore=["$.["]),
     "invalid ignore rule"),
    (lambda p: tp_jupyter.to_pytest([_row("GET", "/", 200, "", ""),
                                     _row("GET", "/", 200, "", "", intercept="other")], p),
     "the rows come from several intercepts (books, other): pass intercept=NAME"),
    (lambda p: tp_jupyter.to_pytest([_row("GET", "/", 0, "", "")], p),
     "none of the rows can become a test: GET / (no answer)"),
])
def test_bad_input_to_to_pytest_is_one_line_and_writes_nothing(
        tmp_path: Path, call: Any, message: str) -> None:
    target = tmp_path / "test_gen.py"
    with pytest.raises(UsageError) as e:
        call(target)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not target.exists()


def test_check_response_names_the_status_and_every_body_difference() -> None:
    answer = {"method": "POST", "path": "/books", "status": 200, "error": "",
              "response_body": '{"id": 4, "title": "DUNE"}'}
    testgen.check_response(dict(answer, response_body='{"id": 9, "title": "DUNE"}'),
                           status=200, body={"id": 4, "title": "DUNE"}, ignore=["$.id"])
    with pytest.raises(AssertionError) as e:
        testgen.check_response(answer, status=201, body={"id": 3, "title": "Dune"},
                               ignore=["$.id"])
    assert str(e.value) == ("POST /books answers differently than captured (ignoring $.id):\n"
                            "  status: expected 201, got 200\n"
                            "  body $.title: expected 'Dune', got 'DUNE'")
    with pytest.raises(AssertionError, match="the replay failed: replay could not connect"):
        testgen.check_response(dict(answer, error="replay could not connect"), status=200)
