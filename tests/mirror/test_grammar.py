"""The filter and wiretap grammar: one parser for `tp` and `%tp`, checks before any call."""

from __future__ import annotations

import pytest
from tp_protocol import intercept_spec
from tp_protocol import manager_pb2 as mpb

from tp_jupyter import api, cli, mirror_command
from tp_jupyter.errors import UsageError


def parse(*argv: str) -> object:
    return cli.build_parser().parse_args(list(argv))


def test_intercept_and_wiretap_take_the_same_path_and_method_filters() -> None:
    for command in ("intercept", "wiretap"):
        args = parse(command, "web", "-p", "8080", "--http-path-prefix", "/books",
                     "--http-method", "GET", "--http-method", "post",
                     "--http-path-regex", r"/\d+$")
        assert mirror_command.filters(args) == {  # type: ignore[arg-type]
            "http_path_equal": None, "http_path_prefix": "/books",
            "http_path_regex": r"/\d+$", "http_method": ["GET", "post"]}


def test_filters_make_an_http_intercept_and_read_as_conditions_in_the_block() -> None:
    spec = mpb.InterceptSpec(name="web", workload="web", target_port=8080,
                             mechanism=mpb.MECHANISM_TCP)
    intercept_spec.apply_filters(spec, path_prefix="/books", methods=["get"])
    intercept_spec.validate(spec)
    assert spec.mechanism == mpb.MECHANISM_HTTP and list(spec.methods) == ["GET"]
    assert api.intercepting_lines(spec) == [
        "HTTP requests that match all of:", '  path starts with "/books"',
        "  method in (GET)"]
    spec.mirror = True
    info = mpb.InterceptInfo(spec=spec, mirror_copied=5, mirror_dropped=2)
    rows = dict(api.intercept_rows(info))
    assert rows["Intercepting"] == "a copy of HTTP requests that match all of (the app answers):"
    assert rows["Copies"].startswith("5 sent, 2 dropped")
    assert api.intercept_dict(info)["mirror"] == {"copied": 5, "dropped": 2}


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"http_path_regex": "("}, "invalid regex"),
    ({"http_path_equal": "books"}, "starts with '/'"),
    ({"http_path_equal": "/a", "http_path_prefix": "/b"}, "can never both hold"),
    ({"http_path_prefix": "/a?x=1"}, "without the query"),
    ({"http_method": ["GET", "get"]}, "twice"),
    ({"http_method": "G E T"}, "not an HTTP method"),
    ({"http_match": ["x-dev"]}, "KEY=REGEX"),
])
def test_bad_filters_are_one_line_errors_before_the_daemon_is_asked(
        kwargs: dict[str, object], words: str) -> None:
    # no daemon runs here: the error must come from the checks, before any call
    with pytest.raises(UsageError) as err:
        mirror_command.wiretap("web", "demo", 8080, **kwargs)  # type: ignore[arg-type]
    assert words in str(err.value) and "\n" not in str(err.value)


def test_tp_help_and_the_magic_help_list_wiretap() -> None:
    from tp_jupyter import magics

    assert "wiretap" in cli.build_parser().format_help()
    text = magics._help_text()
    assert "  wiretap " in text and "%%tp wiretap" in text


def test_status_and_the_panel_show_a_mirrors_drops() -> None:
    from tp_protocol import daemon_pb2 as dpb

    from tp_jupyter import mirror_view

    spec = mpb.InterceptSpec(name="wt", workload="web", namespace="demo", mirror=True,
                             mechanism=mpb.MECHANISM_HTTP, methods=["GET"])
    info = mpb.InterceptInfo(spec=spec, mirror_copied=10, mirror_dropped=3)
    assert mirror_view.panel_text(info) == (
        "mirror of method in (GET): 10 sent, 3 dropped (the local side was slower than "
        "the traffic)")
    status = api.Status(True, True, dpb.StatusInfo(connected=True, intercepts=[info]))
    text = str(status)
    assert "Mirrors:" in text and "wt" in text and "10 sent, 3 dropped" in text
