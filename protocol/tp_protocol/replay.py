"""Replaying a captured HTTP request: the one client (h11) and the one hop-by-hop list.

`request_headers` turns a captured row's headers (plus overrides) into what a replay
sends; `exchange` sends one HTTP/1.1 request over any byte `Stream` (a manager Tunnel,
a TCP connection) and records the answer as a `TrafficRecord` with the shared
`tp_protocol.traffic.Recorder`; `replay_url` does the same to an http:// URL from
synchronous code (the notebook front).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import urllib.parse
from collections.abc import Collection, Iterable

import h11

from tp_protocol import manager_pb2 as mpb
from tp_protocol.pumps import Stream, TcpStream
from tp_protocol.traffic import REDACTED, Recorder

CONNECTION_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection"})
"""Headers about one connection: a relay (the agent) drops them and speaks its own; the
message framing (transfer-encoding) it keeps for its HTTP parser to re-frame."""

HOP_BY_HOP = CONNECTION_HEADERS | {"transfer-encoding", "te", "trailer", "upgrade"}
"""Headers that describe one hop (RFC 9110 7.6.1): never replayed."""

FRAMING = frozenset({"content-length"})
"""Headers a replay recomputes for the body it sends."""


def request_headers(captured: Iterable[tuple[str, str]], overrides: Iterable[tuple[str, str]],
                    *, keep_host: bool = True) -> list[tuple[str, str]]:
    """What a replay sends: the captured headers without hop-by-hop, framing and
    redacted ones (and Host unless `keep_host`), then `overrides` replacing by name."""
    dropped = HOP_BY_HOP | FRAMING | (frozenset() if keep_host else {"host"})
    headers = [(k, v) for k, v in captured if k.lower() not in dropped and v != REDACTED]
    for name, value in overrides:
        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
        headers.append((name, value))
    return headers


async def exchange(stream: Stream, record: mpb.TrafficRecord, *, method: str, target: str,
                   headers: list[tuple[str, str]], body: bytes, seconds: float,
                   body_limit: int, redact: Collection[str] = ()) -> mpb.TrafficRecord:
    """One HTTP/1.1 exchange over `stream` (closed afterwards), recorded into `record`
    (its identity fields set by the caller); failures land in `record.error`."""
    if not any(k.lower() == "host" for k, _ in headers):
        headers = [("Host", "replay"), *headers]
    headers = [*headers, ("Content-Length", str(len(body))), ("Connection", "close")]
    conn = h11.Connection(h11.CLIENT)
    recorder = Recorder(record, body_limit=body_limit, redact=redact)
    recorder.request_head(method or "GET", target or "/", "1.1", headers)
    recorder.request_data(body)
    error = ""
    try:
        async with asyncio.timeout(seconds):
            await stream.send(conn.send(h11.Request(method=method or "GET",
                                                    target=target or "/",
                                                    headers=headers)) or b"")
            await stream.send(conn.send(h11.Data(data=body)) or b"")
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.recv())
                    continue
                if isinstance(event, h11.Response):
                    recorder.response_head(event.status_code, event.reason,
                                           event.headers.raw_items())
                elif isinstance(event, h11.Data):
                    recorder.response_data(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
    except (TimeoutError, OSError, h11.ProtocolError) as e:
        error = f"replay failed: {e or type(e).__name__}"
    finally:
        await stream.close()
    return recorder.finish(error)


def replay_url(url: str, record: mpb.TrafficRecord, *, method: str, path: str,
               headers: list[tuple[str, str]], body: bytes, seconds: float,
               body_limit: int, redact: Collection[str] = ()) -> mpb.TrafficRecord:
    """`exchange` to `url` (http or https; its path prefixes `path`) from sync code, also
    when the calling thread runs an event loop (a notebook kernel)."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = parts.path.rstrip("/") + (path or "/")

    async def run() -> mpb.TrafficRecord:
        try:
            async with asyncio.timeout(seconds):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl.create_default_context() if secure else None)
        except (OSError, TimeoutError) as e:
            record.error = f"replay to {url} failed: {e or type(e).__name__}"
            return record
        if not any(k.lower() == "host" for k, _ in headers):
            headers.insert(0, ("Host", parts.netloc))
        return await exchange(TcpStream(reader, writer), record, method=method, target=target,
                              headers=headers, body=body, seconds=seconds,
                              body_limit=body_limit, redact=redact)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tp-replay") as pool:
        return pool.submit(asyncio.run, run()).result()
