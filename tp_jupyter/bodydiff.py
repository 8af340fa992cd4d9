"""JSON-aware comparison of two HTTP bodies, with rules to ignore noisy fields.

    differences(expected, actual, ignore=()) -> list[str]    [] when they agree
    assert_same(expected, actual, ignore=(), what="body")   AssertionError with the list

`expected`/`actual` are body text (str or bytes) or already-decoded JSON values. When both
are JSON they are compared as data (key order and spacing do not matter), after removing
every field an `ignore` rule selects; otherwise as text. Ignore rules are JSONPath
expressions (jsonpath-ng's extended syntax: `$.id`, `$..updated_at`, `$.items[*].ts`,
`$.items[?(@.kind == "debug")]`). Each difference is one line naming the JSONPath where it
is: `$.books[1].title: expected 'Dune', got 'Dune Messiah'`.

The one implementation of this comparison: `tp_jupyter.to_pytest`'s generated tests use
`differences`, the mirror mode's `compare` words `walk`'s findings as cluster vs local.

Errors: an invalid JSONPath is a one-line `UsageError`.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from tp_jupyter.errors import UsageError

NOT_JSON: Any = object()
"""What `decoded` returns for a body that is not JSON."""

Kind = Literal["changed", "missing", "extra", "length"]
"""What `walk` found at a path: a different value, a key only in the expected value, a
key only in the actual one, lists of different lengths (the lists are the values)."""


def decoded(value: Any) -> Any:
    """`value` as JSON data: text/bytes parsed, anything else as given; NOT_JSON if the
    text does not parse."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return NOT_JSON


@functools.cache
def _compiled(rule: str) -> Any:
    from jsonpath_ng import exceptions
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(rule)
    except (exceptions.JSONPathError, ValueError, TypeError, AttributeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"invalid ignore rule {rule!r} ({reason}); give a JSONPath such as "
                         "'$.id' or '$..updated_at'") from None


def check_rules(ignore: Iterable[str]) -> None:
    """Raise the one-line UsageError for the first rule that is not a JSONPath: a bad
    rule is a mistake even when the bodies agree."""
    for rule in ignore:
        _compiled(rule)


def without(value: Any, ignore: Iterable[str]) -> Any:
    """`value` (decoded JSON) with every field the JSONPath rules select removed."""
    value = copy.deepcopy(value)
    for rule in ignore:
        value = _compiled(rule).filter(lambda _match: True, value)
    return value


def _key(path: str, key: Any) -> str:
    return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else \
        f"{path}[{key!r}]"


def walk(expected: Any, actual: Any, path: str = "$", *, sort_keys: bool = False
         ) -> Iterator[tuple[str, Kind, Any, Any]]:
    """(JSONPath, kind, expected part, actual part) for each place two JSON values differ.
    Object keys come in `expected`'s order then `actual`'s extra ones, or sorted."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = [*expected, *(k for k in actual if k not in expected)]
        for k in sorted(keys, key=str) if sort_keys else keys:
            if k not in actual:
                yield _key(path, k), "missing", expected[k], None
            elif k not in expected:
                yield _key(path, k), "extra", None, actual[k]
            else:
                yield from walk(expected[k], actual[k], _key(path, k), sort_keys=sort_keys)
    elif isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from walk(e, a, f"{path}[{i}]", sort_keys=sort_keys)
        if len(expected) != len(actual):
            yield path, "length", expected, actual
    elif expected != actual or type(expected) is not type(actual):
        yield path, "changed", expected, actual


def _line(path: str, kind: Kind, expected: Any, actual: Any) -> str:
    if kind == "missing":
        return f"{path}: missing (expected {expected!r})"
    if kind == "extra":
        return f"{path}: unexpected {actual!r}"
    if kind == "length":
        return f"{path}: {len(actual)} items, expected {len(expected)}"
    return f"{path}: expected {expected!r}, got {actual!r}"


def differences(expected: Any, actual: Any, ignore: Sequence[str] = ()) -> list[str]:
    """How `actual` differs from `expected` (see the module doc); [] when they agree."""
    check_rules(ignore)
    exp, act = decoded(expected), decoded(actual)
    if exp is NOT_JSON or act is NOT_JSON:
        exp_text = expected.decode() if isinstance(expected, bytes) else str(expected)
        act_text = actual.decode() if isinstance(actual, bytes) else str(actual)
        if exp_text == act_text:
            return []
        if exp is NOT_JSON and act is not NOT_JSON:
            return [f"expected the text {exp_text[:200]!r}, got JSON {act_text[:200]!r}"]
        return [f"expected the text {exp_text[:200]!r}, got {act_text[:200]!r}"]
    return [_line(*found) for found in walk(without(exp, ignore), without(act, ignore))]


def assert_same(expected: Any, actual: Any, ignore: Sequence[str] = (),
                what: str = "body") -> None:
    """AssertionError listing the differences (one per line) unless the bodies agree."""
    found = differences(expected, actual, ignore)
    if found:
        skipped = f" (ignoring {', '.join(ignore)})" if ignore else ""
        raise AssertionError(f"the {what} differs from the captured one{skipped}:\n  "
                             + "\n  ".join(found))
