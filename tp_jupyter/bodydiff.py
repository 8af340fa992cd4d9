"""JSON-aware comparison of two HTTP bodies, with rules to ignore noisy fields.

    differences(expected, actual, ignore=()) -> list[str]    [] when they agree
    assert_same(expected, actual, ignore=(), what="body")   AssertionError with the list

`expected`/`actual` are body text (str or bytes) or already-decoded JSON values. When both
are JSON they are compared as data (key order and spacing do not matter), after removing
every field an `ignore` rule selects; otherwise as text. Ignore rules are JSONPath
expressions (jsonpath-ng's extended syntax: `$.id`, `$..updated_at`, `$.items[*].ts`,
`$.items[?(@.kind == "debug")]`). Each difference is one line naming the JSONPath where it
is: `$.books[1].title: expected 'Dune', got 'Dune Messiah'`.

Used by `tp_jupyter.to_pytest`'s generated tests; small and standalone so the mirror
mode's compare can share it.

Errors: an invalid JSONPath is a one-line `UsageError`.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from tp_jupyter.errors import UsageError

_TEXT = object()   # marks "not JSON"


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return _TEXT


@functools.cache
def _compiled(rule: str) -> Any:
    from jsonpath_ng import exceptions
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(rule)
    except (exceptions.JSONPathError, ValueError, TypeError, AttributeError) as e:
        raise UsageError(f"invalid ignore rule {rule!r} ({e}); give a JSONPath such as "
                         "'$.id' or '$..updated_at'") from None


def without(value: Any, ignore: Iterable[str]) -> Any:
    """`value` (decoded JSON) with every field the JSONPath rules select removed."""
    value = copy.deepcopy(value)
    for rule in ignore:
        value = _compiled(rule).filter(lambda _match: True, value)
    return value


def _key(path: str, key: Any) -> str:
    return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else \
        f"{path}[{key!r}]"


def _walk(expected: Any, actual: Any, path: str, out: list[str]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in expected:
            if k not in actual:
                out.append(f"{_key(path, k)}: missing (expected {expected[k]!r})")
            else:
                _walk(expected[k], actual[k], _key(path, k), out)
        out.extend(f"{_key(path, k)}: unexpected {actual[k]!r}" for k in actual
                   if k not in expected)
    elif isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            _walk(e, a, f"{path}[{i}]", out)
        if len(expected) != len(actual):
            out.append(f"{path}: {len(actual)} items, expected {len(expected)}")
    elif expected != actual or type(expected) is not type(actual):
        out.append(f"{path}: expected {expected!r}, got {actual!r}")


def differences(expected: Any, actual: Any, ignore: Sequence[str] = ()) -> list[str]:
    """How `actual` differs from `expected` (see the module doc); [] when they agree."""
    for rule in ignore:
        _compiled(rule)   # a bad rule is a mistake even when the bodies agree
    exp, act = _decode(expected), _decode(actual)
    if exp is _TEXT or act is _TEXT:
        exp_text = expected.decode() if isinstance(expected, bytes) else str(expected)
        act_text = actual.decode() if isinstance(actual, bytes) else str(actual)
        if exp_text == act_text:
            return []
        if exp is _TEXT and act is not _TEXT:
            return [f"expected the text {exp_text[:200]!r}, got JSON {act_text[:200]!r}"]
        return [f"expected the text {exp_text[:200]!r}, got {act_text[:200]!r}"]
    out: list[str] = []
    _walk(without(exp, ignore), without(act, ignore), "$", out)
    return out


def assert_same(expected: Any, actual: Any, ignore: Sequence[str] = (),
                what: str = "body") -> None:
    """AssertionError listing the differences (one per line) unless the bodies agree."""
    found = differences(expected, actual, ignore)
    if found:
        skipped = f" (ignoring {', '.join(ignore)})" if ignore else ""
        raise AssertionError(f"the {what} differs from the captured one{skipped}:\n  "
                             + "\n  ".join(found))
