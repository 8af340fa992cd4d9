"""The shared traffic record and replay client of tp_protocol against a real local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from tp_protocol import manager_pb2 as mpb
from tp_protocol.replay import replay_url, request_headers
from tp_protocol.traffic import REDACTED


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization") or ""
        seen = ",".join(sorted(k.lower() for k in self.headers))
        payload = f"auth={auth} seen {seen} body ".encode() + body
        self.send_response(201)
        self.send_header("Set-Cookie", "session=abc")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, name="echo", daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_replay_headers_drop_hop_by_hop_framing_and_redacted_values_then_apply_overrides(
        ) -> None:
    captured = [("Host", "web"), ("Connection", "keep-alive"), ("Content-Length", "3"),
                ("Authorization", REDACTED), ("X-Id", "me"), ("TE", "trailers")]
    sent = request_headers(captured, [("x-id", "you"), ("Authorization", "Bearer t")])
    assert sent == [("Host", "web"), ("x-id", "you"), ("Authorization", "Bearer t")]
    assert request_headers(captured, [], keep_host=False) == [("X-Id", "me")]


def test_a_replay_to_a_url_is_recorded_with_bounded_bodies_and_redacted_credentials(
        server: int) -> None:
    record = replay_url(f"http://127.0.0.1:{server}", mpb.TrafficRecord(id="r1"),
                        method="POST", path="/things",
                        headers=[("Authorization", "Bearer t"), ("X-Id", "me")],
                        body=b"hello", seconds=5.0, body_limit=13,
                        redact=("authorization", "set-cookie"))
    assert record.error == ""
    assert (record.method, record.path, record.status) == ("POST", "/things", 201)
    # the server got the real credential; the row keeps it redacted
    assert record.response_body_prefix == b"auth=Bearer t"
    sent = {h.name.lower(): h.value for h in record.request_headers}
    assert sent["authorization"] == REDACTED and sent["x-id"] == "me"
    got = {h.name.lower(): h.value for h in record.response_headers}
    assert got["set-cookie"] == REDACTED
    assert record.request_size == 5 and record.request_body_prefix == b"hello"
    assert record.response_body_truncated and record.response_size > 13
    assert record.duration_ms >= record.time_to_first_byte_ms > 0


def test_a_replay_to_a_closed_port_says_why_in_the_record() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record = replay_url(f"http://127.0.0.1:{port}", mpb.TrafficRecord(id="r2"),
                        method="GET", path="/", headers=[], body=b"", seconds=2.0,
                        body_limit=8)
    assert record.status == 0
    assert record.error.startswith(f"replay to http://127.0.0.1:{port} failed")
