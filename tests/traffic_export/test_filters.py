"""Traffic filters in mitmproxy's syntax: what each operator matches, and bad input."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import tp_jupyter
from tp_jupyter import cli, handlers
from tp_jupyter.errors import UsageError
from tp_jupyter.filters import compile_filter, looks_like_filter

pytestmark = pytest.mark.timeout(60)

POST_BOOK = {"method": "POST", "path": "/books?shelf=1", "status": 503,
             "request_headers": {"Host": "books.demo:8080", "Content-Type": "application/json"},
             "response_headers": {"Retry-After": "5"},
             "request_body": '{"title": "Dune"}', "response_body": "overloaded"}
GET_COLOR = {"method": "GET", "path": "/color", "status": 200,
             "request_headers": {"Host": "dps.demo:3000"}, "response_headers": {},
             "request_body": "", "response_body": '"green"'}


@pytest.fixture(autouse=True)
def no_daemon(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No daemon: traffic() has only this kernel's rows (real cell handlers, real HTTP)."""
    monkeypatch.setenv("TP_HOME", str(tmp_path / "tp-home"))
    yield
    handlers.shutdown()


@pytest.mark.parametrize(("expression", "post_book", "get_color"), [
    ("~m POST & ~p ^/books & ~s 5..", True, False),
    ("~m post", True, False),                       # methods case-insensitively
    ("!~m POST", False, True),
    ("~s 2.. | ~c 503", True, True),
    ("~c 200", False, True),
    ("~s 5", False, False),                         # the whole code must match the pattern
    ("(~m GET | ~m POST) & ~hq '^Content-Type: application/json'", True, False),
    ("~hs ^Retry-After", True, False),
    ("~h '^Host: dps'", False, True),
    ("~u ^http://books\\.demo:8080/books", True, False),
    ("~p shelf=1", True, False),                    # the path has the query
    ("~bq Dune & ~bs overloaded", True, False),
    ("~b green", False, True),
    ("!(~m GET) & !~s 2..", True, False),
])
def test_each_operator_matches_what_mitmproxy_users_expect(expression: str, post_book: bool,
                                                           get_color: bool) -> None:
    chosen = compile_filter(expression)
    assert (chosen(POST_BOOK), chosen(GET_COLOR)) == (post_book, get_color)


@pytest.mark.parametrize(("expression", "message"), [
    ("~m POST & ~x 5", "at column 11 ('~x 5'): unknown operator ~x"),
    ("~m POST ~p x", "at column 9 ('~p x'): join conditions with & (and) or | (or)"),
    ("~p [a", "invalid regex '[a' after ~p (unterminated character set"),
    ("~c 5..", "~c takes a status code such as 404, not '5..'"),
    ("~s '('", "invalid status pattern '(' after ~s"),
    ("(~m POST", "a '(' is not closed"),
    ("~m POST)", "at column 8 (')'): a ')' without its '('"),
    ("~m", "~m needs an argument"),
    ("~h Host: dps", "at column 10 ('dps'): quote a regex that has blanks"),
    ("~m POST &", "a condition is missing after the last operator"),
    ("", "an empty traffic filter"),
])
def test_a_bad_expression_is_one_line_that_points_at_the_mistake(expression: str,
                                                                  message: str) -> None:
    with pytest.raises(UsageError) as e:
        compile_filter(expression)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_filters_and_intercept_names_are_told_apart() -> None:
    assert looks_like_filter("~m POST") and looks_like_filter("!~s 2..")
    assert not looks_like_filter("dataprocessingservice-telepresence-demo")


def test_traffic_takes_a_filter_as_its_first_argument_and_filter_traffic_a_frame() -> None:
    server = handlers.HandlerServer(
        lambda req: ({"error": "no"}, 500) if req.path == "/boom" else {"ok": req.method},
        "books")
    urllib.request.urlopen(urllib.request.Request(server.url + "/books", data=b"{}",
                                                  method="POST"), timeout=5).read()
    urllib.request.urlopen(server.url + "/books", timeout=5).read()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/boom", timeout=5)
    df = tp_jupyter.traffic(kernel=True)
    assert len(df) == 3
    posts = tp_jupyter.traffic("~m POST & ~p ^/books", kernel=True)
    assert list(posts["method"]) == ["POST"] and list(posts["status"]) == [200]
    assert list(tp_jupyter.traffic(filter="~s 5..", kernel=True)["path"]) == ["/boom"]
    assert list(tp_jupyter.filter_traffic(df, "!~s 5..")["path"]) == ["/books", "/books"]
    with pytest.raises(UsageError, match=r"unknown operator ~q"):
        tp_jupyter.traffic("~q x", kernel=True)


def test_tp_traffic_filter_in_a_terminal_prints_one_line_for_a_mistake(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["traffic", "--filter", "~m GET &"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tp: invalid traffic filter '~m GET &' at the end")
    assert err.count("\n") == 1
    assert cli.main(["traffic", "--filter", "~m GET", "--format", "json"]) == 0
    assert '"count": 0' in capsys.readouterr().out


def test_tp_traffic_help_documents_the_filter_and_export_formats(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["traffic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--filter EXPR" in text and "~m ~p ~u ~s ~c ~h ~hq ~hs ~b ~bq ~bs" in text
    assert "{default,json,yaml,har,csv,curl}" in text
