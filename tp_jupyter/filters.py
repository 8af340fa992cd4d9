"""Traffic filters in mitmproxy's filter syntax (a documented subset), parsed with pyparsing.

    compile_filter(expression) -> TrafficFilter     parse once, UsageError when invalid
    TrafficFilter(row) -> bool                      one traffic row (a mapping)
    TrafficFilter.mask(df) -> Series[bool]          every row of a traffic DataFrame
    filter_traffic(df, expression) -> DataFrame     the rows that match
    looks_like_filter(text) -> bool                 `traffic("~m POST")` vs `traffic("name")`

The subset (mitmproxy's names, meaning and precedence: `!` binds tightest, then `&`, then
`|`; parentheses group):

    ~m REGEX    method                      ~h REGEX    a request or response header line
    ~p REGEX    path (with the query)       ~hq REGEX   a request header line
    ~u REGEX    URL (http://HOST/path)      ~hs REGEX   a response header line
    ~s PATTERN  status, e.g. 5.. or 404     ~b REGEX    the request or response body
    ~c CODE     status code, exactly        ~bq REGEX   the request body
    !  not      &  and      |  or           ~bs REGEX   the response body

A REGEX is a word without blanks, parentheses or quotes, or a quoted string ('...' or
"..."); it is searched (not anchored), case-insensitively for ~m and ~u as in mitmproxy.
Header lines are `Name: value`. Two deliberate differences from mitmproxy: `~s` takes a
status pattern (the whole three-digit code must match it: `5..` is every server error;
mitmproxy's `~s` takes nothing and means "has a response") and `~p` matches the path
(mitmproxy has no `~p`); conditions are joined with `&` (no implicit "and"). That is why
mitmproxy's own `flowfilter` module, which also needs mitmproxy's flow objects, is not used.

Errors: an invalid expression or regex is a `UsageError` naming the column of the mistake.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyparsing as pp

from tp_jupyter.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

Predicate = Callable[[Mapping[str, Any]], bool]

OPERATORS = ("m", "p", "u", "s", "c", "h", "hq", "hs", "b", "bq", "bs")
"""The `~X` operators of the subset (`tp traffic --help` and errors list them)."""

_HELP = "use ~m ~p ~u ~s ~c ~h ~hq ~hs ~b ~bq ~bs with ! & | and parentheses"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _header_lines(headers: Any) -> str:
    if not isinstance(headers, Mapping):
        return ""
    return "\n".join(f"{k}: {v}" for k, v in headers.items())


def _url(row: Mapping[str, Any]) -> str:
    headers = row.get("request_headers")
    host = ""
    if isinstance(headers, Mapping):
        host = next((str(v) for k, v in headers.items() if str(k).lower() == "host"), "")
    if not host:
        host = ".".join(p for p in (_text(row.get("workload")), _text(row.get("namespace")))
                        if p)
    return f"http://{host}{_text(row.get('path'))}"


_FIELDS: dict[str, tuple[Callable[[Mapping[str, Any]], list[str]], int]] = {
    "m": (lambda r: [_text(r.get("method"))], re.IGNORECASE),
    "p": (lambda r: [_text(r.get("path"))], 0),
    "u": (lambda r: [_url(r)], re.IGNORECASE),
    "h": (lambda r: [_header_lines(r.get("request_headers")),
                     _header_lines(r.get("response_headers"))], re.MULTILINE),
    "hq": (lambda r: [_header_lines(r.get("request_headers"))], re.MULTILINE),
    "hs": (lambda r: [_header_lines(r.get("response_headers"))], re.MULTILINE),
    "b": (lambda r: [_text(r.get("request_body")), _text(r.get("response_body"))],
          re.DOTALL),
    "bq": (lambda r: [_text(r.get("request_body"))], re.DOTALL),
    "bs": (lambda r: [_text(r.get("response_body"))], re.DOTALL),
}
"""The regex operators: what text of a row each one searches, with which flags."""


def _status(row: Mapping[str, Any]) -> str:
    try:
        return str(int(row.get("status") or 0))
    except (TypeError, ValueError):
        return ""


class _Invalid(Exception):
    def __init__(self, loc: int, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _regex_atom(_s: str, loc: int, toks: pp.ParseResults) -> Predicate:
    op, pattern = str(toks[0])[1:], str(toks[1])
    read, flags = _FIELDS[op]
    try:
        rx = re.compile(pattern, flags)
    except re.error as e:
        raise _Invalid(loc, f"invalid regex {pattern!r} after ~{op} ({e})") from e
    return lambda row: any(rx.search(text) for text in read(row))


def _status_atom(_s: str, loc: int, toks: pp.ParseResults) -> Predicate:
    pattern = str(toks[1])
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise _Invalid(loc, f"invalid status pattern {pattern!r} after ~s ({e})") from e
    return lambda row: rx.fullmatch(_status(row)) is not None


def _code_atom(_s: str, loc: int, toks: pp.ParseResults) -> Predicate:
    text = str(toks[1])
    if not text.isdigit():
        raise _Invalid(loc, f"~c takes a status code such as 404, not {text!r} (~s takes "
                            "a pattern such as 4..)")
    code = int(text)
    return lambda row: _status(row) == str(code)


def _not(toks: pp.ParseResults) -> Predicate:
    inner: Predicate = toks[0][0]
    return lambda row: not inner(row)


def _and(toks: pp.ParseResults) -> Predicate:
    parts: list[Predicate] = list(toks[0])
    return lambda row: all(p(row) for p in parts)


def _or(toks: pp.ParseResults) -> Predicate:
    parts: list[Predicate] = list(toks[0])
    return lambda row: any(p(row) for p in parts)


@functools.cache
def _grammar() -> pp.ParserElement:
    # an argument: a bare word (mitmproxy's: no blanks, parentheses, quotes or ~) or quoted
    word = pp.Regex(r"[^\s()~'\"]+")
    argument = word | pp.QuotedString('"', esc_char="\\") | pp.QuotedString("'", esc_char="\\")
    argument = argument.set_name("a regex (quote it if it has blanks or parentheses)")
    regex_ops = sorted(_FIELDS, key=len, reverse=True)   # ~hq before ~h
    regex_atom = (pp.Regex(r"~(" + "|".join(regex_ops) + r")\b") + argument
                  ).set_parse_action(_regex_atom)
    status_atom = (pp.Regex(r"~s\b") + argument).set_parse_action(_status_atom)
    code_atom = (pp.Regex(r"~c\b") + argument).set_parse_action(_code_atom)
    atom = (regex_atom | status_atom | code_atom).set_name(
        "a condition such as ~m POST, ~p ^/books or ~s 5..")
    expr: pp.ParserElement = pp.infix_notation(atom, [  # type: ignore[no-untyped-call]
        (pp.Suppress("!"), 1, pp.OpAssoc.RIGHT, _not),
        (pp.Suppress("&"), 2, pp.OpAssoc.LEFT, _and),
        (pp.Suppress("|"), 2, pp.OpAssoc.LEFT, _or),
    ])
    whole: pp.ParserElement = expr + pp.StringEnd()
    return whole


@dataclass(frozen=True)
class TrafficFilter:
    """A compiled filter: call it with a row (a mapping), or `mask(df)` a DataFrame."""

    expression: str
    predicate: Predicate

    def __call__(self, row: Mapping[str, Any]) -> bool:
        return bool(self.predicate(row))

    def mask(self, df: pd.DataFrame) -> pd.Series:
        import pandas as pd

        rows = df.to_dict("records")
        return pd.Series([self(row) for row in rows], index=df.index, dtype="bool")


def _where(expression: str, loc: int) -> str:
    rest = expression[loc:loc + 12]
    return f"at column {loc + 1} ({rest!r})" if rest else "at the end"


def _diagnose(expression: str, error: pp.ParseBaseException) -> str:
    """What is wrong where pyparsing stopped, in the user's terms."""
    loc = error.loc
    op = re.match(r"~(\w*)", expression[loc:])
    before = expression[:loc].rstrip()
    if op and op.group(1) not in OPERATORS:
        return f"unknown operator ~{op.group(1)}"
    if op and before and before[-1] not in "&|!(":
        return "join conditions with & (and) or | (or)"
    if op:
        return f"~{op.group(1)} needs an argument (quote it if it has blanks or parentheses)"
    if expression.count("(") > expression.count(")"):
        return "a '(' is not closed"
    if expression[loc:loc + 1] == ")":
        return "a ')' without its '('"
    if not expression[loc:].strip():
        return "a condition is missing after the last operator"
    if before and before[-1] not in "&|!(":
        return "quote a regex that has blanks, or join conditions with & or |"
    return "expected a condition such as ~m POST, ~p ^/books or ~s 5.."


def compile_filter(expression: str) -> TrafficFilter:
    """Parse a filter expression (see the module doc); a mistake is a one-line UsageError
    that names the column where it is."""
    if not isinstance(expression, str) or not expression.strip():
        raise UsageError(f"an empty traffic filter: {_HELP}, e.g. '~m POST & ~s 5..'")
    try:
        parsed = _grammar().parse_string(expression, parse_all=True)
    except _Invalid as e:
        raise UsageError(f"invalid traffic filter {expression!r} {_where(expression, e.loc)}"
                         f": {e}") from None
    except pp.ParseBaseException as e:
        raise UsageError(f"invalid traffic filter {expression!r} {_where(expression, e.loc)}"
                         f": {_diagnose(expression, e)}; {_HELP}") from None
    return TrafficFilter(expression, parsed[0])


def filter_traffic(df: pd.DataFrame, expression: str) -> pd.DataFrame:
    """The rows of a traffic DataFrame that match `expression` (mitmproxy's filter syntax,
    the subset in `tp_jupyter.filters`), e.g. `filter_traffic(df, "~m POST & ~s 5..")`."""
    return df[compile_filter(expression).mask(df)]


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def looks_like_filter(text: str) -> bool:
    """True for a filter expression, False for an intercept name (names are DNS-like
    labels: no `~`, blanks or operators)."""
    return _NAME.fullmatch(text.strip()) is None
