"""Captured traffic into a pytest file: `tp_jupyter.to_pytest(rows, path, against=...)`.

    to_pytest(rows, path, against="local", ignore=(), intercept=None) -> GeneratedTests
    check_response(response, status=, body=, ignore=())   what each generated test calls

The file has one test per exchange: it replays the captured request (`tp_jupyter.replay`,
through the daemon and the intercept, to your local code or to the app in the cluster)
and checks that the status and the body are the captured ones, JSON-aware and without the
fields the `ignore` JSONPath rules select (tp_jupyter.bodydiff). A failing test names
each difference on its own line. The file runs with plain `pytest FILE` while `tp
connect` and the intercept are up; `TP_TEST_AGAINST=local|cluster` overrides `against`.

Rows left out (said in the file's docstring): an exchange without an answer (status 0),
and one whose request body was truncated at capture (the replay would send part of it).
A response body truncated at capture is checked as a prefix.

Errors: rows that are not traffic rows, an unknown `against`, an invalid ignore rule or an
unwritable path are one-line `UsageError`s, and then no file is written.
"""

from __future__ import annotations

import datetime
import json
import pprint
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tp_jupyter import bodydiff
from tp_jupyter.errors import UsageError
from tp_jupyter.har import _rows, body_text
from tp_jupyter.render import Rendered

_LEFT_OUT_HEADERS = {"content-length", "connection", "keep-alive", "transfer-encoding",
                     "te", "trailer", "upgrade", "proxy-connection"}


def check_response(response: Any, *, status: int, body: Any = None,
                   body_prefix: str | None = None, ignore: Sequence[str] = ()) -> None:
    """Assert that a replayed exchange (`tp_jupyter.replay`'s row) has the captured
    `status` and `body` (JSON-aware, `ignore` rules applied), or starts with
    `body_prefix` when the captured body was truncated."""
    error = str(response.get("error") or "")
    if error:
        raise AssertionError(f"the replay failed: {error}")
    got_status = int(response.get("status") or 0)
    got_body, _cut = body_text(response, "response")
    found = []
    if got_status != status:
        found.append(f"status: expected {status}, got {got_status}")
    if body_prefix is not None:
        if not got_body.startswith(body_prefix):
            found.append(f"body: expected to start with {body_prefix[:200]!r}, got "
                         f"{got_body[:200]!r}")
    else:
        expected = body if isinstance(body, str) else json.dumps(body)
        found += [f"body {line}" for line in bodydiff.differences(expected, got_body, ignore)]
    if found:
        skipped = f" (ignoring {', '.join(ignore)})" if ignore else ""
        raise AssertionError(f"{response.get('method')} {response.get('path')} answers "
                             f"differently than captured{skipped}:\n  " + "\n  ".join(found))


@dataclass(repr=False)
class GeneratedTests(Rendered):
    """What `to_pytest` wrote: the path, the test names and the rows left out."""

    path: Path
    tests: list[str]
    left_out: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"Wrote {_count(len(self.tests), 'test')} to {self.path}"
        if self.left_out:
            text += f" (left out: {'; '.join(self.left_out)})"
        return text


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "root"


def _literal(value: Any, indent: int) -> str:
    text = pprint.pformat(value, width=88 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def _expected_body(text: str, ignore: Sequence[str]) -> tuple[str, Any]:
    """(`body=`, the Python literal's value): JSON as data without the ignored fields (they
    are not checked, and would only make each run's file differ), else the text."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return "body", text
    return "body", text if isinstance(decoded, str) else bodydiff.without(decoded, ignore)


def _test(i: int, row: dict[str, Any], names: set[str], ignore: Sequence[str]
          ) -> tuple[str, str]:
    method = str(row.get("method") or "GET")
    path = str(row.get("path") or "/")
    status = int(row.get("status") or 0)
    name = f"test_{i:02d}_{_slug(method)}_{_slug(path.partition('?')[0])}_answers_{status}"
    while name in names:
        name += "_again"
    names.add(name)
    headers = {str(k): str(v) for k, v in dict(row.get("request_headers") or {}).items()
               if str(k).lower() not in _LEFT_OUT_HEADERS}
    req_body, _ = body_text(row, "request")
    resp_body, resp_cut = body_text(row, "response")
    kind, expected = (("body_prefix", resp_body) if resp_cut
                      else _expected_body(resp_body, ignore))
    lines = [f"def {name}() -> None:",
             "    response = send(",
             f"        {method!r},",
             f"        {path!r},",
             f"        headers={_literal(headers, 16)},"]
    if req_body:
        lines.append(f"        body={_literal(req_body, 13)},")
    lines += ["    )",
              "    check_response(",
              "        response,",
              f"        status={status},",
              f"        {kind}={_literal(expected, 9 + len(kind))},",
              "        ignore=IGNORE,",
              "    )"]
    return name, "\n".join(lines)


def to_pytest(rows: Any, path: str | Path, against: str = "local",
              ignore: Sequence[str] = (), intercept: str | None = None) -> GeneratedTests:
    """Write a pytest file with one test per exchange of `rows` (see the module doc).

    `against`: "local" (your code: the cell handler or local port of the intercept) or
    "cluster" (the app container in the cluster). `ignore`: JSONPath rules for body fields
    that change between runs (`$.id`, `$..updated_at`). `intercept`: the intercept to
    replay through (default: each row's)."""
    if against not in ("local", "cluster"):
        raise UsageError(f"to_pytest(against={against!r}): use 'local' or 'cluster'")
    ignore = list(ignore)
    bodydiff.check_rules(ignore)   # a bad rule fails here, before anything is written
    chosen = _rows(rows)
    if not chosen:
        raise UsageError("no rows to turn into tests: pass a traffic DataFrame with rows")
    names: set[str] = set()
    tests: list[tuple[str, str]] = []
    left_out: list[str] = []
    intercepts = {intercept} if intercept else set()
    for i, row in enumerate(chosen, 1):
        what = f"{row.get('method')} {row.get('path')}"
        if not int(row.get("status") or 0):
            left_out.append(f"{what} (no answer)")
            continue
        if body_text(row, "request")[1]:
            left_out.append(f"{what} (request body truncated at capture)")
            continue
        if not intercept:
            intercepts.add(str(row.get("intercept") or ""))
        tests.append(_test(i, row, names, ignore))
    if not tests:
        raise UsageError(f"none of the rows can become a test: {'; '.join(left_out)}")
    intercepts.discard("")
    if len(intercepts) > 1:
        raise UsageError(f"the rows come from several intercepts ({', '.join(sorted(intercepts))})"
                         ": pass intercept=NAME, or one intercept's rows")
    via = next(iter(intercepts), "")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = "your local code" if against == "local" else "the app in the cluster"
    doc = [f'"""Tests generated by tp_jupyter.to_pytest from '
           f"{_count(len(tests), 'captured exchange')} ({when}).", "",
           f"Each test replays one captured request to {where} (TP_TEST_AGAINST=local|cluster",
           f"overrides) through the intercept {via or '(your only one)'} with tp_jupyter.replay,",
           "so `tp connect` and the intercept must be up, and checks the status and the body",
           "(as JSON when it is JSON" + (f"; ignored, and left out below: {', '.join(ignore)})."
                                         if ignore else ")."),
           ]
    if left_out:
        doc.append("Left out: " + "; ".join(left_out) + ".")
    doc.append('"""')
    header = "\n".join(doc) + f'''

import os
from typing import Any

import tp_jupyter
from tp_jupyter.testgen import check_response

AGAINST = os.environ.get("TP_TEST_AGAINST", {against!r})
INTERCEPT = {via or None!r}
IGNORE = {ignore!r}


def send(method: str, path: str, headers: dict[str, str], body: str = "") -> Any:
    """Replay one request; the new exchange as a row (status, response_body, error)."""
    request = {{"method": method, "path": path, "request_headers": headers,
               "request_body": body, "captured_by": "har", "intercept": INTERCEPT}}
    return tp_jupyter.replay(request, to=AGAINST)
'''
    text = header + "".join(f"\n\n{code}\n" for _, code in tests)
    target = Path(path).expanduser()
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path} ({e.strerror}); give a writable path") from e
    return GeneratedTests(target, [name for name, _ in tests], left_out)
