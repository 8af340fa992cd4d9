"""HAR 1.2 out and in, one row as curl and Python code, and bad files (no cluster needed).

The rows are real: requests answered by a cell handler server over HTTP (kernel rows).
The HAR files are read back by `read_har` and by mitmproxy's own reader."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mitmproxy_har_reader import read_with_mitmproxy

import tp_jupyter
from tp_jupyter import cli, handlers
from tp_jupyter.errors import UsageError

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def no_daemon(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TP_HOME", str(tmp_path / "tp-home"))
    yield
    handlers.shutdown()


def _echo(request: Any) -> Any:
    """Answers with what it received, so a test can see what a command sent."""
    if request.path == "/missing":
        return {"error": "not here"}, 404
    return {"method": request.method, "path": request.path, "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": request.body.decode()}


@pytest.fixture
def echo() -> handlers.HandlerServer:
    return handlers.HandlerServer(_echo, "books")


def _send(url: str, method: str = "GET", body: bytes | None = None,
          **headers: str) -> None:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        urllib.request.urlopen(req, timeout=5).read()
    except urllib.error.HTTPError as e:
        e.read()


@pytest.fixture
def rows(echo: handlers.HandlerServer) -> pd.DataFrame:
    _send(echo.url + "/books?shelf=2", "POST", b'{"title": "Dune"}',
          **{"Content-Type": "application/json", "X-Dev": "me"})
    _send(echo.url + "/books")
    _send(echo.url + "/missing")
    df = tp_jupyter.traffic(kernel=True)
    assert list(df["status"]) == [200, 200, 404]
    return df


def test_a_har_written_from_rows_reads_back_into_the_same_rows(rows: pd.DataFrame,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "books.har"
    har = tp_jupyter.to_har(rows, path)
    assert har["log"]["version"] == "1.2" and len(har["log"]["entries"]) == 3
    first = json.loads(path.read_text())["log"]["entries"][0]
    assert first["request"]["url"].endswith("/books?shelf=2")
    assert first["request"]["queryString"] == [{"name": "shelf", "value": "2"}]
    assert first["request"]["postData"] == {"mimeType": "application/json",
                                            "text": '{"title": "Dune"}'}
    assert first["response"]["statusText"] == "OK" and first["_tp"]["intercept"] == "books"
    back = tp_jupyter.read_har(path)
    assert list(back.columns) == list(rows.columns)
    assert set(back["captured_by"]) == {"har"}
    same = ["method", "path", "status", "duration_ms", "request_headers", "response_headers",
            "request_body", "response_body", "intercept", "id", "routed_to"]
    pd.testing.assert_frame_equal(back[same], rows[same])
    assert (back["time"] - rows["time"]).abs().max() < pd.Timedelta(milliseconds=1)


def test_mitmproxy_opens_the_har_with_every_request_and_answer(rows: pd.DataFrame,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "books.har"
    tp_jupyter.to_har(rows, path)
    flows = read_with_mitmproxy(path)
    assert [(f["method"], f["status"]) for f in flows] == [("POST", 200), ("GET", 200),
                                                            ("GET", 404)]
    post = flows[0]
    assert post["url"].endswith("/books?shelf=2") and post["request_body"] == '{"title": "Dune"}'
    assert post["request_headers"]["X-Dev"] == "me"
    assert json.loads(post["response_body"])["body"] == '{"title": "Dune"}'
    assert json.loads(flows[2]["response_body"]) == {"error": "not here"}


def test_a_browser_style_har_reads_too(tmp_path: Path) -> None:
    # what devtools save: HTTP/2 pseudo-headers, a base64 body, no _tp
    entry = {"startedDateTime": "2026-12-04T10:00:00.000+01:00", "time": 12.5,
             "request": {"method": "GET", "url": "https://shop.example/api/cart?id=7",
                         "httpVersion": "h2", "headers": [
                             {"name": ":authority", "value": "shop.example"},
                             {"name": "accept", "value": "application/json"}],
                         "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 200, "statusText": "", "httpVersion": "h2",
                          "headers": [{"name": "content-type", "value": "application/json"}],
                          "cookies": [], "redirectURL": "", "headersSize": -1, "bodySize": 9,
                          "content": {"size": 9, "mimeType": "application/json",
                                      "encoding": "base64",
                                      "text": base64.b64encode(b'{"n": 2}').decode()}},
             "cache": {}, "timings": {"send": 0, "wait": 12.5, "receive": 0}}
    path = tmp_path / "browser.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "x"},
                                        "entries": [entry]}}))
    row = tp_jupyter.read_har(path).iloc[0]
    assert (row["method"], row["path"], row["status"]) == ("GET", "/api/cart?id=7", 200)
    assert row["request_headers"] == {"Host": "shop.example", "accept": "application/json"}
    assert row["response_body"] == '{"n": 2}' and row["time"].hour == 9   # in UTC
    assert tp_jupyter.to_curl(row) == ("curl 'http://shop.example/api/cart?id=7' "
                                       "-H 'accept: application/json'")


@pytest.mark.parametrize(("content", "why"), [
    (None, "no such file"),
    ("{not json", "not JSON (line 1 column 2"),
    ('{"log": {"version": "1.2"}}', "no log.entries list"),
    ('{"log": {"entries": [{"response": {}}]}}', "entry 0 has no request"),
    ('{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/", "headers": [],'
     ' "postData": {"encoding": "base64", "text": "%%%"}}}]}}',
     "entry 0.request.postData.text is not valid base64"),
    ('{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/", "headers": [],'
     '}, "startedDateTime": "yesterday"}]}}', "not JSON"),
    ('{"log": {"entries": [{"request": {"method": "GET", "url": "http://a/", "headers": []},'
     ' "startedDateTime": "yesterday"}]}}', "entry 0.startedDateTime is not a date"),
])
def test_a_file_that_is_not_a_har_is_one_line_that_says_what_to_give(
        tmp_path: Path, content: str | None, why: str) -> None:
    path = tmp_path / "in.har"
    if content is not None:
        path.write_text(content)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(UsageError) as e:
        tp_jupyter.read_har(path)
    message = str(e.value)
    assert message.startswith(f"cannot read {path} as a HAR file: ") and why in message
    assert "\n" not in message and "give a HAR 1.2 file" in message
    assert sorted(tmp_path.iterdir()) == before   # nothing written


def test_writing_a_har_where_it_cannot_go_is_one_line(rows: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot write .*/nowhere/x\.har \(No such file or "
                                         r"directory\); give a writable path"):
        tp_jupyter.to_har(rows, tmp_path / "nowhere" / "x.har")
    assert not (tmp_path / "nowhere").exists()


def test_the_curl_command_of_a_row_sends_the_same_request(
        rows: pd.DataFrame, echo: handlers.HandlerServer) -> None:
    command = tp_jupyter.to_curl(rows.iloc[0])
    assert command.startswith("curl -X POST ")
    done = subprocess.run(["sh", "-c", command + " -sS --max-time 5"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/books", "shelf=2")
    assert seen["body"] == '{"title": "Dune"}' and seen["headers"]["x-dev"] == "me"
    assert seen["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_the_python_code_of_a_row_sends_the_same_request(
        rows: pd.DataFrame, client: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = tp_jupyter.to_python(rows.iloc[0], client=client)
    assert f"import {client}" in code and "json={'title': 'Dune'}" in code
    exec(compile(code, "<to_python>", "exec"), {})
    status, _, body = capsys.readouterr().out.strip().partition(" ")
    seen = json.loads(body)
    assert status == "200" and seen["method"] == "POST" and seen["query"] == "shelf=2"
    assert json.loads(seen["body"]) == {"title": "Dune"} and seen["headers"]["x-dev"] == "me"


def test_code_of_several_rows_or_of_an_unknown_client_is_refused(rows: pd.DataFrame) -> None:
    with pytest.raises(UsageError, match=r"to_curl\(\) takes one row, not 3: pass df\.iloc"):
        tp_jupyter.to_curl(rows)
    with pytest.raises(UsageError, match="use 'requests' or 'httpx'"):
        tp_jupyter.to_python(rows.iloc[0], client="urllib3")


def test_tp_traffic_exports_har_csv_and_curl_from_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    har, csv = tmp_path / "t.har", tmp_path / "t.csv"
    assert cli.main(["traffic", "--format", "har", "-o", str(har)]) == 0
    assert capsys.readouterr().out.strip() == f"Wrote 0 rows to {har} as HAR"
    assert json.loads(har.read_text())["log"]["entries"] == []
    assert cli.main(["traffic", "--format", "csv", "-o", str(csv)]) == 0
    assert csv.read_text().startswith("time,intercept,method,path,status")
    capsys.readouterr()
    assert cli.main(["traffic", "--format", "har"]) == 0
    assert json.loads(capsys.readouterr().out)["log"]["creator"]["name"] == "tp-jupyter"
