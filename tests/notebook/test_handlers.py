"""The in-kernel handler server: every handler kind, swaps under load, failures."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from tp_nb_helpers import tp_threads, wait_for

from tp_jupyter import handlers
from tp_jupyter.handlers import HandlerServer, Request, Response

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def stop_servers() -> Iterator[None]:
    yield
    handlers.shutdown()


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
        method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize(("result", "status", "ctype", "body"), [
    ("green", 200, "text/plain; charset=utf-8", b"green"),
    (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
    ({"color": "green"}, 200, "application/json", b'{"color": "green"}'),
    ([1, 2], 200, "application/json", b"[1, 2]"),
    (None, 204, None, b""),
    (("nope", 404), 404, "text/plain; charset=utf-8", b"nope"),
    (Response("<b>hi</b>", 201, {"Content-Type": "text/html"}), 201, "text/html", b"<b>hi</b>"),
])
def test_a_function_handler_may_return_str_bytes_json_none_tuple_or_response(
        result: Any, status: int, ctype: str | None, body: bytes) -> None:
    server = HandlerServer(lambda req: result, "plain")
    code, headers, payload = get(server.url + "/x")
    assert (code, payload) == (status, body)
    if ctype:
        assert headers["Content-Type"] == ctype


def test_a_handler_sees_method_path_query_headers_and_body() -> None:
    seen: list[Request] = []

    def handler(req: Request) -> dict[str, Any]:
        seen.append(req)
        return {"method": req.method, "path": req.path, "q": req.query,
                "id": req.headers["x-dev-id"], "json": req.json()}

    server = HandlerServer(handler)
    code, _, payload = get(server.url + "/api/color?a=1&b=2", {"X-Dev-Id": "me"},
                           data=b'{"k": 3}', method="POST")
    assert code == 200
    assert json.loads(payload) == {"method": "POST", "path": "/api/color",
                                   "q": {"a": "1", "b": "2"}, "id": "me", "json": {"k": 3}}
    assert seen[0].target == "/api/color?a=1&b=2"


def test_an_async_function_handler_is_awaited() -> None:
    async def handler(req: Request) -> str:
        await asyncio.sleep(0)
        return f"async {req.path}"

    server = HandlerServer(handler)
    assert get(server.url + "/p")[2] == b"async /p"


def test_a_flask_app_is_served_as_wsgi() -> None:
    app = flask.Flask("tp_test")

    @app.route("/color")
    def color() -> Any:
        return {"color": flask.request.args.get("c", "green")}

    server = HandlerServer(app)
    assert server.handler.kind == "wsgi"
    code, _, payload = get(server.url + "/color?c=blue")
    assert code == 200 and json.loads(payload) == {"color": "blue"}
    assert get(server.url + "/missing")[0] == 404


def test_an_asgi_app_is_served_natively() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-type", b"text/plain"), (b"x-path", scope["path"]
                                                                  .encode())]})
        await send({"type": "http.response.body", "body": b"got " + message["body"]})

    server = HandlerServer(app)
    assert server.handler.kind == "asgi"
    code, headers, payload = get(server.url + "/a%20b", data=b"data", method="PUT")
    assert (code, payload, headers["x-path"]) == (202, b"got data", "/a b")


def test_a_handler_exception_gives_500_with_the_traceback_and_a_traffic_row() -> None:
    def broken(req: Request) -> str:
        raise ValueError("no color configured")

    server = HandlerServer(broken, "color-demo")
    code, _, payload = get(server.url + "/color")
    assert code == 500
    text = payload.decode()
    assert "ValueError: no color configured" in text and "in broken" in text
    assert "tp_jupyter/handlers.py" not in text   # only the user's frames
    row = server.rows()[-1]
    assert row.status == 500 and "ValueError: no color configured" in row.error
    assert row.intercept_name == "color-demo" and row.path == "/color"
    assert "ValueError" in server.output.text   # the cell's output shows it too


def test_a_bad_return_value_gives_500_that_says_what_to_return() -> None:
    server = HandlerServer(lambda req: 3.5)
    code, _, payload = get(server.url + "/")
    assert code == 500 and b"return str, bytes, a dict" in payload


def test_print_in_a_handler_goes_to_the_servers_sink_not_to_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []

    def handler(req: Request) -> str:
        print("handling", req.path)
        return "ok"

    server = HandlerServer(handler, sink=lambda text, stream: lines.append(text))
    get(server.url + "/one")
    assert "handling /one\n" in "".join(lines)
    assert "handling /one" in server.output.text
    assert "handling" not in capsys.readouterr().out


def test_a_slow_handler_gives_504_after_the_configured_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tp_protocol.settings import get_settings

    monkeypatch.setattr(get_settings().notebook, "handler_timeout", 0.3)
    release = threading.Event()

    def slow(req: Request) -> str:
        release.wait(5)
        return "late"

    server = HandlerServer(slow)
    try:
        code, _, payload = get(server.url + "/")
        assert code == 504 and b"notebook.handler_timeout" in payload
    finally:
        release.set()


def test_a_body_over_the_limit_gets_413(monkeypatch: pytest.MonkeyPatch) -> None:
    from tp_protocol.settings import get_settings

    monkeypatch.setattr(get_settings().notebook, "handler_body_limit", 10)
    server = HandlerServer(lambda req: "ok")
    assert get(server.url + "/", data=b"x" * 100, method="POST")[0] == 413


def test_swapping_the_handler_under_a_request_loop_fails_no_request() -> None:
    server = HandlerServer(lambda req: "v0")
    results: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        while not stop.is_set():   # keep-alive: swaps happen between requests on one connection
            conn.request("GET", "/")
            r = conn.getresponse()
            results.append((r.status, r.read()))
        conn.close()

    clients = [threading.Thread(target=loop, name=f"client-{i}") for i in range(3)]
    for t in clients:
        t.start()
    for version in range(1, 30):
        server.set_handler(lambda req, v=version: f"v{v}")
        wait_for(lambda v=version: any(b == f"v{v}".encode() for _, b in results[-20:]), 10,
                 f"v{version} served")
    stop.set()
    for t in clients:
        t.join(10)
    assert len(results) > 30
    assert all(status == 200 for status, _ in results)
    assert results[-1][1] == b"v29"
    assert server.swaps == 29


def test_an_in_flight_request_finishes_on_the_old_handler() -> None:
    entered, release = threading.Event(), threading.Event()

    def old(req: Request) -> str:
        entered.set()
        release.wait(5)
        return "old"

    server = HandlerServer(old)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(get(server.url + "/")[2]))
    t.start()
    assert entered.wait(5)
    server.set_handler(lambda req: "new")
    assert get(server.url + "/")[2] == b"new"
    release.set()
    t.join(5)
    assert got == [b"old"]


def test_a_cell_handler_is_found_by_name_or_as_the_last_function_defined() -> None:
    def handler(req: Request) -> str:
        return "h"

    def later(req: Request) -> str:
        return "l"

    handler.__module__ = later.__module__ = "__main__"
    assert handlers.find_handler({}, {"x": 1, "handler": handler}).name == "handler"
    assert handlers.find_handler({}, {"a": handler, "later": later}).name == "later"
    app = flask.Flask("tp_test")
    assert handlers.find_handler({}, {"app": app}).kind == "wsgi"
    with pytest.raises(handlers.HandlerError, match="define a function taking a request"):
        handlers.find_handler({"x": 1}, {"x": 2, "n": 3})
    with pytest.raises(handlers.HandlerError, match="takes 4 arguments"):
        handlers.classify(lambda a, b, c, d: None, "four")
    with pytest.raises(handlers.HandlerError, match="not a handler"):
        handlers.classify(42, "answer")


def test_shutdown_stops_every_thread_and_restores_stdout() -> None:
    import sys

    before = sys.stdout
    server = HandlerServer(lambda req: "ok")
    assert get(server.url + "/")[0] == 200
    assert "tp-handler-loop" in tp_threads()
    handlers.shutdown()
    assert tp_threads() == []
    assert not server.running and handlers.servers() == []
    assert sys.stdout is before or not isinstance(sys.stdout, handlers._RoutingStream)


def _raw(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes (every request here ends with close)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_chunked_and_100_continue_bodies_reach_the_handler_and_head_gets_no_body() -> None:
    server = HandlerServer(lambda req: f"{req.method} {req.text}")
    chunked = _raw(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                                b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, second = chunked.partition(b"POST abcde")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 10\r\n" in first
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5\r\n" in second   # HEAD: the length of the GET body, no body
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("PUT", "/", body=b"later", headers={"Expect": "100-continue"})
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"PUT later")
    assert [row.method for row in server.rows()] == ["POST", "HEAD", "PUT"]


def test_a_malformed_request_gets_400_and_the_server_keeps_serving() -> None:
    server = HandlerServer(lambda req: "ok")
    answer = _raw(server.port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert get(server.url + "/")[:3:2] == (200, b"ok")


def test_a_header_with_a_line_break_from_the_handler_is_a_500_not_a_split_response() -> None:
    server = HandlerServer(lambda req: Response("x", 200, {"X-Evil": "a\r\nSet-Cookie: b"}))
    code, headers, body = get(server.url + "/")
    assert code == 500 and "Set-Cookie" not in headers and b"line break" in body
