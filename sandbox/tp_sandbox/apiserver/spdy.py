"""kubectl's port-forward: SPDY/3.1 tunneled in a WebSocket
(`SPDY/3.1+portforward.k8s.io`), translated to the kubelet's `v4.channel.k8s.io`
WebSocket, one kubelet stream per forwarded connection.

kubectl opens two SPDY streams per connection (headers `streamtype: error|data`,
`port`, `requestid`); once both exist the kubelet stream is opened, DATA on the data
stream goes to channel 0 and back, the kubelet's channel 1 goes to the error stream.
Only the frames this protocol uses are handled: SYN_STREAM/SYN_REPLY, DATA,
RST_STREAM, PING and GOAWAY; SETTINGS and WINDOW_UPDATE are ignored as spdystream
(kubectl's side) ignores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _PING, _GOAWAY = 1, 2, 3, 6, 7
_FIN = 0x01
_MAX_DATA = (1 << 24) - 1
_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK", "version",
    "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0."
)
# The SPDY/3 header-compression dictionary (spec section 2.6.10.1): length-prefixed
# words, then a free-form tail.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()

OpenKubelet = Callable[[int], Awaitable[aiohttp.ClientWebSocketResponse]]


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


def _control(ftype: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(body)) + body


def _data(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id, (flags << 24) | len(payload)) + payload


@dataclass(eq=False)
class _Pair:
    """The two SPDY streams of one forwarded connection and its kubelet stream."""

    port: int
    data_id: int = 0
    error_id: int = 0
    upstream: aiohttp.ClientWebSocketResponse | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Tunnel:
    def __init__(self, ws: web.WebSocketResponse, open_kubelet: OpenKubelet) -> None:
        self._ws = ws
        self._open = open_kubelet
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, _Pair] = {}

    async def run(self) -> None:
        buf = bytearray()
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                buf += msg.data
                while len(buf) >= 8:
                    end = 8 + (int.from_bytes(buf[5:8], "big"))
                    if len(buf) < end:
                        break
                    frame = bytes(buf[:end])
                    del buf[:end]
                    if not await self._frame(frame):
                        return
        finally:
            for pair in list(self._pairs.values()):
                await self._close_upstream(pair)
            tasks = [p.task for p in self._pairs.values() if p.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack_from(">I", raw, 0)
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            out[name.lower()] = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out

    def _empty_headers(self) -> bytes:
        return self._deflate.compress(b"\0\0\0\0") + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    async def _frame(self, frame: bytes) -> bool:
        """Handle one frame; False ends the tunnel."""
        if not frame[0] & 0x80:
            stream_id = int.from_bytes(frame[0:4], "big") & 0x7FFFFFFF
            pair = self._by_stream.get(stream_id)
            if pair is not None and stream_id == pair.data_id:
                if len(frame) > 8:
                    await pair.ready.wait()
                    if pair.upstream is not None and not pair.upstream.closed:
                        await pair.upstream.send_bytes(b"\x00" + frame[8:])
                if frame[4] & _FIN:
                    await self._close_upstream(pair)
            return True
        ftype = int.from_bytes(frame[2:4], "big")
        body = frame[8:]
        if ftype == _SYN_STREAM:
            stream_id = int.from_bytes(body[0:4], "big") & 0x7FFFFFFF
            headers = self._headers(body[10:])
            await self._ws.send_bytes(_control(_SYN_REPLY, 0, struct.pack(">I", stream_id)
                                               + self._empty_headers()))
            self._open_stream(stream_id, headers)
        elif ftype == _RST_STREAM:
            pair = self._by_stream.get(int.from_bytes(body[0:4], "big") & 0x7FFFFFFF)
            if pair is not None:
                await self._close_upstream(pair)
        elif ftype == _PING:
            await self._ws.send_bytes(frame)
        elif ftype == _GOAWAY:
            return False
        return True

    def _open_stream(self, stream_id: int, headers: dict[str, str]) -> None:
        request = headers.get("requestid", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        pair = self._pairs.setdefault(request, _Pair(port))
        if headers.get("streamtype") == "error":
            pair.error_id = stream_id
        else:
            pair.data_id = stream_id
        self._by_stream[stream_id] = pair
        if pair.data_id and pair.error_id and pair.task is None:
            pair.task = asyncio.create_task(self._forward(request, pair),
                                            name=f"portforward-{request}-{pair.port}")
            pair.task.add_done_callback(_log_failure)

    async def _close_upstream(self, pair: _Pair) -> None:
        if pair.upstream is not None and not pair.upstream.closed:
            await pair.upstream.close()

    async def _send_data(self, stream_id: int, payload: bytes) -> None:
        for i in range(0, len(payload), _MAX_DATA):
            await self._ws.send_bytes(_data(stream_id, 0, payload[i:i + _MAX_DATA]))

    async def _forward(self, request: str, pair: _Pair) -> None:
        try:
            try:
                pair.upstream = await self._open(pair.port)
            except Exception as exc:
                pair.ready.set()
                await self._send_data(pair.error_id, f"error forwarding port {pair.port}: "
                                                     f"{exc}".encode())
                return
            pair.ready.set()
            seen = [False, False]  # the first frame of each channel is the port number
            async for msg in pair.upstream:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel in (0, 1) and not seen[channel]:
                    seen[channel] = True
                    continue
                target = pair.data_id if channel == 0 else pair.error_id
                if payload:
                    await self._send_data(target, payload)
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            log.info("port-forward %s ended: %r", request, exc)
        finally:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                if not self._ws.closed:
                    await self._ws.send_bytes(_data(pair.data_id, _FIN, b""))
                    await self._ws.send_bytes(_data(pair.error_id, _FIN, b""))
            await self._close_upstream(pair)
            self._pairs.pop(request, None)
            self._by_stream.pop(pair.data_id, None)
            self._by_stream.pop(pair.error_id, None)
