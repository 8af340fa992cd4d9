"""A lean pods/portforward WebSocket (`v4.channel.k8s.io`) for pod routes.

The data path of a proxied connection in port-forward mode is this one WebSocket, so
its per-byte cost is the daemon's: aiohttp's client decrypts into a fresh bytes object,
joins those, copies frames out of its parser and wakes a task per message. Here the
connection is an `asyncio.BufferedProtocol` under the event loop's own TLS transport:
TLS decrypts straight into a buffer of ours, frames are parsed in place and the data
channel's payload is handed on as views of that buffer (a buffer that was handed on is
never written again, so a view that a transport still holds stays valid); control
frames (ping, pong, close) are answered here. Writes are masked (RFC 6455: a client masks
every frame with an unpredictable key) with aiohttp's C helper once a large frame asked for
it, imported in a thread then (`_mask`): connect and the manager's gRPC channel send small
frames only and never pay for importing aiohttp (~70 ms of CPU).

Only what a pod port-forward needs (pod routes, the manager's channel, agent links): one
port, the handshake of RFC 6455 with the API server's auth headers and TLS context, pings
when the server is silent (a dead connection ends), and no half-close (v4 has none).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from tp_protocol.aio import wait_at_most

from tp_daemon.preload import Preload
from tp_daemon.streams import CHUNK, READ_BUFFER

if TYPE_CHECKING:
    from tp_daemon.portforward import ApiEndpoint, PodPort

SUBPROTOCOL = "v4.channel.k8s.io"
DATA, ERROR = 0, 1
"""Channels of a v4 port-forward's binary frames (the first byte): data and error."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BINARY, _TEXT, _CONT, _CLOSE, _PING, _PONG = 2, 1, 0, 8, 9, 10
_MAX_HEAD = 64 * 1024       # a response head larger than this is not an API server's
_MAX_CONTROL = 125          # RFC 6455 5.5
_SMALL = 16 * 1024
"""Payload pieces up to this size are copied out, so the receive buffer is reused; larger
ones are handed on as views and the next read goes into a fresh buffer."""
_MAX_BUFFER = 4 * CHUNK


class _Masker:
    """Masks a frame's payload in place: aiohttp's C helper once imported, else Python's
    big-integer XOR (~200 MB/s, plenty for small frames). The first large frame starts
    importing the C helper in a thread; frames until it is there take the XOR."""

    def __init__(self) -> None:
        self._c: Callable[[bytes, bytearray], None] | None = None
        self._importing: Preload | None = None

    def __call__(self, key: bytes, data: bytearray) -> None:
        if self._c is not None:
            self._c(key, data)
            return
        n = len(data)
        if n > _SMALL and self._importing is None:
            self._importing = Preload(("aiohttp._websocket.helpers",), "tp-preload-ws-mask",
                                      default_cas=False, then=self._use_c).start()
        stream = (key * (n // 4 + 1))[:n]
        data[:] = (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
                   ).to_bytes(n, "little")

    def _use_c(self) -> None:
        from aiohttp._websocket.helpers import websocket_mask  # the pinned aiohttp's C mask

        self._c = websocket_mask


_mask = _Masker()


class HandshakeError(ConnectionError):
    """The API server answered the upgrade with something other than 101."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class PodSocket(asyncio.BufferedProtocol):
    """One pod port-forward WebSocket: `recv` yields the data channel, `send` writes it."""

    def __init__(self, heartbeat: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._heartbeat = heartbeat
        self._hb_handle: asyncio.TimerHandle | None = None
        self._ping_at = 0.0          # when the unanswered ping went out (0: none)
        self._last_rx = 0.0
        # receive buffer: bytes [_start, _end) are read and not parsed yet
        self._buf = bytearray(CHUNK)
        self._start = self._end = 0
        self._handed = False         # a view of _buf went out: never write into it again
        # the frame being read
        self._opened = False         # the 101 was seen
        self._key = b""
        self._head_done: asyncio.Future[None] = self._loop.create_future()
        self._remaining = 0          # payload bytes of the current frame still to come
        self._kind = 0               # what the current frame is (_BINARY: data)
        self._binary = False         # the message being continued is a binary one
        self._need_channel = False   # the next payload byte is the channel byte
        self._channel = -1
        self._skip = {DATA: 2, ERROR: 2}   # each channel's first 2 bytes: the port number
        self._control = bytearray()
        self._ignored = False        # the current frame's payload is dropped (text...)
        # what recv hands out
        self._chunks: deque[bytes | memoryview] = deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._reading_paused = False
        self._sink: asyncio.Transport | None = None   # `pump_to`'s local transport
        self._out: list[memoryview] = []   # data of this read for the sink (`_flush_out`)
        self._congested = False      # the sink's buffer is full: reading waits for it
        self._data_at = 0.0          # when data last came (`pump_to`'s linger)
        self.error = ""
        """What the kubelet reported on the error channel (it could not reach the pod)."""
        self.pongs = 0
        """Pongs received (answers to the heartbeat's pings)."""
        # writing
        self._close_sent = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    # --- opening -----------------------------------------------------------------

    @classmethod
    async def open(cls, endpoint: ApiEndpoint, target: PodPort, *,
                   heartbeat: float | None) -> PodSocket:
        """Connect, upgrade and check the answer (the caller bounds the time); raises
        HandshakeError for an answer other than 101, OSError (ssl.SSLError too) otherwise."""
        url = urlsplit(endpoint.portforward_url(target))
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        host = url.hostname or ""
        context: ssl.SSLContext | None = None
        if tls:
            context = (endpoint.ssl_context if isinstance(endpoint.ssl_context, ssl.SSLContext)
                       else ssl.create_default_context())
            if endpoint.ssl_context is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        proto = cls(heartbeat)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            lambda: proto, host, port, ssl=context, server_hostname=host if tls else None)
        try:
            await proto._upgrade(url.netloc, f"{url.path}?{url.query}", endpoint.headers)
        except BaseException:
            transport.abort()
            raise
        return proto

    async def _upgrade(self, netloc: str, path: str, headers: dict[str, str]) -> None:
        self._key = base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: {netloc}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self._key.decode()}",
                 "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Protocol: {SUBPROTOCOL}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        assert self._transport is not None
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await asyncio.shield(self._head_done)

    def _on_head(self, head: bytes) -> None:
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer to the upgrade: {status_line[:80]!r}")
        status = int(parts[1])
        reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
        if status != 101:
            raise HandshakeError(status, reason)
        fields: dict[bytes, bytes] = {}
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest())
        if fields.get(b"sec-websocket-accept") != accept:
            raise ConnectionError("the API server's WebSocket answer has a wrong "
                                  "Sec-WebSocket-Accept")

    # --- the protocol callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but one in all but name
        self._transport = cast(asyncio.Transport, transport)
        self._last_rx = self._loop.time()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._start == self._end and not self._handed:
            self._start = self._end = 0
        free = len(self._buf) - self._end
        if self._handed or free < _SMALL:
            left = self._end - self._start
            want = min(max(CHUNK, sizehint, self._remaining + 16), _MAX_BUFFER)
            if self._handed or want > len(self._buf) - left:
                fresh = bytearray(max(want, left + _SMALL))
                fresh[:left] = self._buf[self._start:self._end]
                self._buf, self._handed = fresh, False
            else:
                self._buf[:left] = self._buf[self._start:self._end]
            self._start, self._end = 0, left
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._last_rx = self._loop.time()
        try:
            if not self._opened:
                at = self._buf.find(b"\r\n\r\n", self._start, self._end)
                if at < 0:
                    if self._end - self._start > _MAX_HEAD:
                        raise ConnectionError("the API server's answer head is too large")
                    return
                self._on_head(bytes(self._buf[self._start:at]))
                self._start = at + 4
                self._opened = True
                self._head_done.set_result(None)
                self._arm_heartbeat()
            self._parse()
            self._flush_out()
        except Exception as e:
            self._flush_out()
            if not self._head_done.done():
                self._head_done.set_exception(e)
            assert self._transport is not None
            self._transport.abort()
            self._finish()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._head_done.done():
            self._head_done.set_exception(exc or ConnectionError(
                "the API server closed the connection during the WebSocket upgrade"))
        self._head_done.exception()  # retrieved
        if self._hb_handle is not None:
            self._hb_handle.cancel()
        self._finish()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("port-forward closed"))
            self._drain.exception()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- frames in -------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        start, end = self._start, self._end
        while start < end:
            if self._remaining:
                take = min(self._remaining, end - start)
                self._remaining -= take
                if self._kind == _BINARY:
                    self._payload(start, start + take)
                elif not self._ignored:
                    self._control += buf[start:start + take]
                    if not self._remaining:
                        self._on_control()
                start += take
                continue
            if end - start < 2:
                break
            b0, b1 = buf[start], buf[start + 1]
            length, pos = b1 & 0x7F, start + 2
            if length == 126:
                if end - pos < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, pos)
                pos += 2
            elif length == 127:
                if end - pos < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos)
                pos += 8
            if b1 & 0x80:
                raise ConnectionError("the API server sent a masked WebSocket frame")
            start = pos
            opcode = b0 & 0x0F
            if opcode == _BINARY or (opcode == _CONT and self._binary):
                self._kind = _BINARY
                if opcode == _BINARY:
                    self._binary, self._need_channel = True, True
            elif opcode in (_CLOSE, _PING, _PONG):
                if length > _MAX_CONTROL:
                    raise ConnectionError("the API server sent an oversized control frame")
                self._kind, self._ignored = opcode, False
                self._control.clear()
            else:  # text or reserved: v4 port-forwards carry binary frames only
                self._kind, self._ignored = _TEXT, True
                if opcode == _TEXT:
                    self._binary = False
            self._remaining = length
            if not length and self._kind in (_CLOSE, _PING, _PONG):
                self._on_control()
        self._start, self._end = start, end

    def _payload(self, a: int, b: int) -> None:
        """Bytes [a, b) of the buffer are payload of a binary frame."""
        if self._need_channel:
            self._channel = self._buf[a]
            self._need_channel = False
            a += 1
        skip = self._skip.get(self._channel, 0)
        if skip and a < b:
            n = min(skip, b - a)
            self._skip[self._channel] = skip - n
            a += n
        if a >= b:
            return
        if self._channel == DATA:
            self._data_at = self._last_rx
            sink = self._sink
            if sink is not None:
                # straight to the local socket: no task switch, no queue; the buffer is
                # reused unless the transport had to keep (a view of) part of it
                if sink.is_closing():
                    self._finish()
                    return
                self._out.append(memoryview(self._buf)[a:b])
                return
            if b - a <= _SMALL:
                piece: bytes | memoryview = bytes(memoryview(self._buf)[a:b])
            else:
                piece = memoryview(self._buf)[a:b]
                self._handed = True
            self._chunks.append(piece)
            self._queued += b - a
            if self._queued > READ_BUFFER:
                self._pause()
            self._wake()
        elif self._channel == ERROR:
            self.error += self._buf[a:b].decode(errors="replace")
            self._finish()

    def _flush_out(self) -> None:
        """The data of one read to the local socket in one write: each write there wakes
        the local client, which costs more than the bytes on a busy machine."""
        if not self._out:
            return
        sink, out = self._sink, self._out
        self._out = []
        if sink is None or sink.is_closing():
            self._finish()
            return
        sink.writelines(out)
        if left := sink.get_write_buffer_size():
            self._handed = True
            if left > CHUNK and not self._congested:
                self._congested = True
                self._pause()
                self._wake()

    def _on_control(self) -> None:
        if self._kind == _PING:
            self._write_frame(_PONG, bytes(self._control))
        elif self._kind == _CLOSE:
            if not self._close_sent:
                self._write_frame(_CLOSE, bytes(self._control[:2]))
                self._close_sent = True
            assert self._transport is not None
            self._transport.close()
            self._finish()
        else:  # a pong: _last_rx moved already, which is all the heartbeat looks at
            self.pongs += 1

    def _pause(self) -> None:
        if not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _finish(self) -> None:
        self._eof = True
        self._wake()

    # --- heartbeat ---------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        if self._heartbeat:
            self._hb_handle = self._loop.call_at(self._last_rx + self._heartbeat, self._beat)

    def _beat(self) -> None:
        """Ping after `heartbeat` s without a byte from the server; end the connection
        when nothing came within half of that after the ping (as aiohttp's heartbeat)."""
        assert self._heartbeat and self._transport is not None
        now = self._loop.time()
        if self._ping_at and self._last_rx < self._ping_at:
            if now >= self._ping_at + self._heartbeat / 2:
                self._transport.abort()
                return
            self._hb_handle = self._loop.call_at(self._ping_at + self._heartbeat / 2,
                                                 self._beat)
            return
        self._ping_at = 0.0
        if now < self._last_rx + self._heartbeat:
            self._hb_handle = self._loop.call_at(self._last_rx + self._heartbeat, self._beat)
            return
        self._ping_at = now
        self._write_frame(_PING, b"")
        self._hb_handle = self._loop.call_at(now + self._heartbeat / 2, self._beat)

    # --- the stream ------------------------------------------------------------------

    async def recv(self) -> bytes | memoryview:
        """Next piece of the pod's data; b"" once the port-forward ended (`error` says
        why when the kubelet reported it)."""
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        piece = self._chunks.popleft()
        self._queued -= len(piece)
        if self._queued <= READ_BUFFER // 2:
            self._resume()
        return piece

    async def pump_to(self, writer: asyncio.StreamWriter,
                      linger: Callable[[], float | None] = lambda: None) -> None:
        """Write the pod's data to `writer` from the protocol's own callbacks until the
        port-forward ends, or, once `linger()` gives a number of seconds, until no data
        came for that long (`nudge` makes it ask again)."""
        transport = cast(asyncio.Transport, writer.transport)
        while self._chunks:
            transport.write(self._chunks.popleft())
        self._queued = 0
        self._sink = transport
        self._resume()
        try:
            while not self._eof:
                if self._congested:
                    await writer.drain()
                    self._congested = False
                    self._resume()
                    continue
                self._waiter = self._loop.create_future()
                try:
                    seconds = linger()
                    if seconds is None:
                        await self._waiter
                    else:
                        left = self._data_at + seconds - self._loop.time()
                        if left <= 0:
                            return
                        await wait_at_most(self._waiter, left)
                finally:
                    self._waiter = None
        finally:
            self._sink = None

    def nudge(self) -> None:
        """Make a waiting `pump_to` look at its `linger` again."""
        self._wake()

    async def send(self, data: bytes) -> None:
        """`data` on the data channel (one frame), waiting while the transport is full."""
        if self._eof or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("port-forward closed")
        payload = bytearray(len(data) + 1)   # channel byte DATA (0), then the data
        payload[1:] = data
        self._write_frame(_BINARY, payload)
        if self._write_paused:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def _write_frame(self, opcode: int, payload: bytes | bytearray) -> None:
        assert self._transport is not None
        if self._transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        masked = payload if isinstance(payload, bytearray) else bytearray(payload)
        _mask(key, masked)
        if n <= _SMALL:  # one TLS record for a small frame
            self._transport.write(head + key + masked)
        else:
            self._transport.writelines((head + key, masked))

    @property
    def closed(self) -> bool:
        """The port-forward ended (either side) or is closing."""
        return self._eof or self._transport is None or self._transport.is_closing()

    async def close_write(self) -> None:
        """Nothing: v4 has no half-close; the peer (gRPC, HTTP) ends the connection."""
        return

    async def close(self) -> None:
        """Say goodbye (close 1000) and close the connection, not waiting for the echo."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._close_sent:
            self._close_sent = True
            self._write_frame(_CLOSE, struct.pack("!H", 1000))
        transport.close()

    def abort(self) -> None:
        """End the connection at once (the daemon disconnects)."""
        if self._transport is not None:
            self._transport.abort()
