"""Intercept-spec checks, written once: the front, the daemon and the manager all call them.

The front parses the CLI grammar (`-p LOCAL[:SVCPORT]`, `--http-match KEY=REGEX`, the
path and method filters) with `parse_port`/`parse_http_match`/`apply_filters`; every
side then calls `validate` on the `tp.manager.v1.InterceptSpec` it is about to act on,
so each mistake has exactly one message wherever it is caught first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tp_protocol import manager_pb2 as mpb
from tp_protocol.errors import TpJupyterError

# RFC 9110 section 5.6.2: a header field name is a `token`.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class InvalidInterceptSpec(TpJupyterError, ValueError):
    """The spec cannot work as given; the message says what to change."""


def check_header_name(name: str) -> None:
    """A header name must be an HTTP token (no spaces, colons, ...), or it never matches."""
    if not name:
        raise InvalidInterceptSpec("an --http-match needs a header name: use KEY=REGEX")
    if not _TOKEN.fullmatch(name):
        raise InvalidInterceptSpec(
            f"--http-match header name {name!r} is not a valid HTTP header name (letters, "
            "digits and !#$%&'*+-.^_`|~ only); fix the KEY of KEY=REGEX")


def check_regex(name: str, regex: str) -> None:
    try:
        re.compile(regex)
    except re.error as e:
        raise InvalidInterceptSpec(f"--http-match {name}={regex}: invalid regex ({e}); fix "
                                   "the regular expression") from e


def parse_port(port: int | str) -> tuple[int, str]:
    """`-p LOCAL[:SVCPORT]` -> (local port, service port name or number or "")."""
    text = str(port)
    local, _, service = text.partition(":")
    if not local.isdigit() or not 0 < int(local) < 65536:
        raise InvalidInterceptSpec(f"-p {text}: give LOCALPORT[:SVCPORT] with LOCALPORT "
                                   "1-65535 (SVCPORT: the service port's name or number)")
    return int(local), service


def parse_http_match(matches: Sequence[str] | str | None) -> list[mpb.HeaderMatch] | None:
    """`KEY=REGEX` pairs (all must match); None means a global intercept (`all` or none)."""
    if matches is None or isinstance(matches, str):
        matches = [matches] if matches else []
    if not matches or list(matches) == ["all"]:
        return None
    result = []
    for item in matches:
        if item == "all":
            raise InvalidInterceptSpec("--http-match all cannot be combined with KEY=REGEX "
                                       "matches; use one or the other")
        key, eq, regex = item.partition("=")
        if not eq or not key.strip():
            raise InvalidInterceptSpec(f"--http-match {item!r}: use KEY=REGEX (e.g. "
                                       "--http-match blog-demo-id=alice) or all")
        check_header_name(key.strip())
        check_regex(key.strip(), regex)
        result.append(mpb.HeaderMatch(name=key.strip(), regex=regex))
    return result


_METHOD = re.compile(r"[A-Z]+")


def apply_filters(spec: mpb.InterceptSpec, *, path_equal: str | None = None,
                  path_prefix: str | None = None, path_regex: str | None = None,
                  methods: Sequence[str] | str | None = None) -> None:
    """`--http-path-equal/-prefix/-regex`, `--http-method` into `spec` (checked by
    `validate`); any of them makes the intercept an HTTP one, as `--http-match` does."""
    if isinstance(methods, str):
        methods = [methods]
    spec.path_equal = path_equal or ""
    spec.path_prefix = path_prefix or ""
    spec.path_regex = path_regex or ""
    del spec.methods[:]
    spec.methods.extend(m.strip().upper() for m in methods or [])
    if has_filters(spec):
        spec.mechanism = mpb.MECHANISM_HTTP


def has_filters(spec: mpb.InterceptSpec) -> bool:
    """Whether the spec filters on path or method."""
    return bool(spec.path_equal or spec.path_prefix or spec.path_regex or spec.methods)


def check_filters(spec: mpb.InterceptSpec) -> None:
    """The path and method filters each make sense, and together can match something."""
    for flag, value in (("--http-path-equal", spec.path_equal),
                        ("--http-path-prefix", spec.path_prefix)):
        if value and not value.startswith("/"):
            raise InvalidInterceptSpec(f"{flag} {value}: a path starts with '/' (e.g. "
                                       f"{flag} /{value})")
        if "?" in value:
            raise InvalidInterceptSpec(f"{flag} {value}: paths are matched without the "
                                       "query; drop the '?...' part")
    if spec.path_equal and spec.path_prefix and not spec.path_equal.startswith(
            spec.path_prefix):
        raise InvalidInterceptSpec(f"--http-path-equal {spec.path_equal} and "
                                   f"--http-path-prefix {spec.path_prefix} can never both "
                                   "hold; keep one of them")
    if spec.path_regex:
        try:
            re.compile(spec.path_regex)
        except re.error as e:
            raise InvalidInterceptSpec(f"--http-path-regex {spec.path_regex}: invalid regex "
                                       f"({e}); fix the regular expression") from e
    for method in spec.methods:
        if not _METHOD.fullmatch(method):
            raise InvalidInterceptSpec(f"--http-method {method!r} is not an HTTP method "
                                       "(letters only, e.g. GET or POST)")
    if len(set(spec.methods)) != len(spec.methods):
        raise InvalidInterceptSpec("--http-method names a method twice; give each once")


def validate(spec: mpb.InterceptSpec) -> None:
    """Refuse a spec that cannot work; the same message on every side that checks it."""
    if not spec.workload:
        raise InvalidInterceptSpec("name the workload to intercept: tp intercept WORKLOAD "
                                   "-p PORT")
    if not 0 < spec.target_port < 65536:
        raise InvalidInterceptSpec(f"local port {spec.target_port} is not a port: give "
                                   "-p LOCALPORT[:SVCPORT] with LOCALPORT 1-65535")
    if spec.mechanism == mpb.MECHANISM_TCP and spec.header_matches:
        raise InvalidInterceptSpec("--http-match needs an HTTP (personal) intercept; drop "
                                   "the header matches for a global one")
    for match in spec.header_matches:
        check_header_name(match.name)
        check_regex(match.name, match.regex)
    if spec.mechanism == mpb.MECHANISM_TCP and has_filters(spec):
        raise InvalidInterceptSpec("path and method filters need an HTTP intercept; drop "
                                   "--http-match all")
    if spec.mirror and spec.mechanism == mpb.MECHANISM_TCP:
        raise InvalidInterceptSpec("a wiretap copies HTTP requests: it cannot take every TCP "
                                   "connection; drop --http-match all")
    if spec.mirror and spec.replace_app:
        raise InvalidInterceptSpec("a wiretap leaves the app answering: it cannot replace it")
    check_filters(spec)
