"""Raw dials (manager.proto `RawDialHeader`): a tunneled TCP connection as its own TLS
connection, the bytes with no framing but TLS records. Used by the daemon (dialer) and
the traffic-manager (listener).

`TlsStream` is an `asyncio.BufferedProtocol` over the TCP connection that drives an
`ssl.SSLObject` over MemoryBIOs rather than asyncio's SSL transport, for two reasons:
half-close (a TLS 1.3 close_notify is one direction's end, and the far side may still
send; asyncio's transport has no `write_eof` over TLS) and speed. The event loop reads
into one buffer that feeds the TLS input; once a sink is attached (`pump_to`,
`splice_tcp`) the decrypted bytes are written to it from that read callback: no task
switch, queue or copy per chunk, and the socket stays registered with the loop.
Sending encrypts and hands the records to the transport at once (back-pressure: `send`
waits while the transport's buffer is above its high-water mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

from google.protobuf.message import Message

from tp_protocol.pumps import run_pair

MAGIC = b"TPRD"
"""The first bytes of a raw dial's header (after the TLS handshake)."""

MAX_MESSAGE = 16 * 1024
"""Largest header or answer accepted (they are a few dozen bytes)."""

QUEUED_CHUNKS = 4
"""Without a sink, reading pauses once this many chunks of decrypted bytes wait for
`recv` (and resumes below half of it)."""

FIRST_READ = 64 * 1024
"""Size of a connection's first read buffers; a read that fills one doubles them, up to
the `chunk` the stream was made with (so bulk transfers read and write large pieces
while quiet connections keep small buffers)."""

_KEPT_BUFFERS = 4
"""Plain buffers a `TlsStream` keeps for reuse once its sink wrote them out."""

M = TypeVar("M", bound=Message)


class Writer(Protocol):
    """Where `pump_to` writes: an `asyncio.StreamWriter`, or `splice_tcp`'s pipe."""

    @property
    def transport(self) -> asyncio.WriteTransport: ...

    async def drain(self) -> None: ...


def _no_linger(transport: asyncio.BaseTransport) -> None:
    """Make closing the transport's socket a reset (the far side sees it was cut)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class TlsStream(asyncio.BufferedProtocol):
    """One TLS connection as a byte `Stream` (`tp_protocol.pumps`), with half-close.

    One reader at a time (`recv`/`recv_exactly`, then at most one `pump_to`) and any
    number of writers: every write encrypts and hands its records to the transport in
    one synchronous step, so records a read produced (TLS 1.3 key updates) never
    interleave with data."""

    def __init__(self, tls: ssl.SSLObject, bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO],
                 chunk: int, label: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._in, self._out = bios
        self._chunk = chunk
        size = min(chunk, FIRST_READ)
        self._raw = memoryview(bytearray(size))      # the loop reads into this
        self._plain = memoryview(bytearray(size))    # decrypted bytes for the sink
        self._lent: list[memoryview] = []    # plain buffers the sink may still hold
        self._spare: list[memoryview] = []   # plain buffers it wrote out since
        self._transport: asyncio.Transport | None = None
        self._handshaken = False
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._chunks: deque[bytes] = deque()   # decrypted, waiting for `recv`
        self._queued = 0
        self._pending = bytearray()   # decrypted, not yet handed out (after a header)
        self._eof = False             # the peer's close_notify
        self._input_ended = False     # the socket's EOF is in the TLS input
        self._error: ConnectionError | None = None
        self._lost = False            # the transport is gone
        self._wrote_close = False
        self._reading = True
        self._write_paused = False
        self._writable: list[Callable[[], None]] = []  # called when writing may go on
        self._waiter: asyncio.Future[None] | None = None
        self._sink: asyncio.WriteTransport | None = None
        self._congested = False       # the sink holds bytes: wait for it to drain
        self.label = label

    # --- opening ------------------------------------------------------------------

    @classmethod
    async def connect(cls, host: str, port: int, context: ssl.SSLContext, server_name: str,
                      chunk: int) -> TlsStream:
        """A client connection past its handshake (the caller bounds the time)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
        return await cls._start(sock, tls, (incoming, outgoing), chunk, f"{host}:{port}")

    @classmethod
    async def accept(cls, sock: socket.socket, context: ssl.SSLContext, chunk: int,
                     label: str) -> TlsStream:
        """The server side of an accepted socket past its handshake (caller bounds it)."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        return await cls._start(sock, tls, (incoming, outgoing), chunk, label)

    @classmethod
    async def _start(cls, sock: socket.socket, tls: ssl.SSLObject,
                     bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO], chunk: int,
                     label: str) -> TlsStream:
        """The stream on `sock` (it owns the socket from here on), past its handshake."""
        loop = asyncio.get_running_loop()
        stream = cls(tls, bios, chunk, label)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.connect_accepted_socket(lambda: stream, sock)
        except BaseException:
            sock.close()
            raise
        try:
            await stream._handshake
        except BaseException:
            stream.abort()
            raise
        return stream

    # --- the protocol (the event loop calls these) ---------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are asyncio.Transports in all but name
        self._transport = cast(asyncio.Transport, transport)
        self._advance()  # a client's hello

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._raw

    def buffer_updated(self, nbytes: int) -> None:
        self._in.write(self._raw[:nbytes])
        if nbytes == len(self._raw) < self._chunk:  # reads fill it: read more at once
            size = min(2 * nbytes, self._chunk)
            self._raw = memoryview(bytearray(size))
            self._plain = memoryview(bytearray(size))  # (the sink never holds this one)
            self._spare.clear()
        self._advance()

    def eof_received(self) -> bool:
        self._end_input()
        return True  # the transport stays open: our side may still send

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and not self._eof and self._error is None:
            self._error = ConnectionResetError(f"{self.label}: connection lost ({exc})")
        else:  # what came before still counts; then it ends as an EOF would
            self._end_input()
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionResetError(
                f"{self.label}: closed during the TLS handshake"))
        self._on_writable()
        self._wake()

    def _end_input(self) -> None:
        if not self._input_ended:
            self._input_ended = True
            self._in.write_eof()
            self._advance()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._on_writable()

    # --- reading ------------------------------------------------------------------

    def _advance(self) -> None:
        """Move the TLS state on after bytes (or EOF) came: handshake, then data."""
        if self._error is not None:
            return
        if not self._handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                if self._in.eof:
                    self._fail_handshake(ConnectionResetError(
                        f"{self.label}: closed during the TLS handshake"))
                return
            except ssl.SSLError as exc:  # e.g. not the pinned certificate
                self._flush()            # the alert, for the far side's log
                self._fail_handshake(ConnectionResetError(
                    f"{self.label}: closed during the TLS handshake")
                    if isinstance(exc, ssl.SSLEOFError) else exc)
                return
            self._handshaken = True
            self._flush()
            if not self._handshake.done():
                self._handshake.set_result(None)
        if not self._congested:
            try:
                self._decrypt_all()
            except ConnectionError as exc:
                self._error = exc
        self._wake()

    def _fail_handshake(self, exc: Exception) -> None:
        self._error = ConnectionResetError(f"{self.label}: TLS handshake failed: {exc}")
        if not self._handshake.done():
            self._handshake.set_exception(exc)

    def _decrypt(self) -> int:
        """Decrypt what the TLS input holds into the plain buffer; its length."""
        view, n = self._plain, 0
        try:
            while n < len(view):
                # with a buffer, read returns the count (typeshed says bytes)
                got = cast(int, self._tls.read(len(view) - n, view[n:]))
                if got == 0:  # close_notify: the peer sends no more
                    self._eof = True
                    break
                n += got
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._eof = True
        except ssl.SSLError as exc:
            if n:  # hand out what came before the failure; the next read raises
                return n
            if isinstance(exc, ssl.SSLEOFError):
                raise ConnectionResetError(f"{self.label}: closed without close_notify"
                                           ) from None
            raise ConnectionResetError(f"{self.label}: {exc.reason or exc}") from None
        return n

    def _decrypt_all(self) -> None:
        """Decrypt all the TLS input holds, to the sink or the queue."""
        if self._lent and self._sink is not None and not self._sink.get_write_buffer_size():
            self._spare += [b for b in self._lent if len(b) == len(self._raw)]
            self._lent.clear()
        while not self._eof:
            n = self._decrypt()
            self._flush()  # records the read produced (a key update's answer)
            if not n:
                break
            if self._sink is None:
                self._chunks.append(bytes(self._plain[:n]))
                self._queued += n
                continue
            if self._sink.is_closing():  # its connection is gone: nobody reads this
                raise ConnectionResetError(f"{self.label}: the receiving side closed")
            self._sink.write(self._plain[:n])
            if self._sink.get_write_buffer_size():
                # the sink keeps (a view of) the rest: decrypt into another buffer, and
                # wait for the sink to drain before reading on
                if len(self._lent) < _KEPT_BUFFERS:  # more are left to the collector
                    self._lent.append(self._plain)
                self._plain = (self._spare.pop() if self._spare
                               else memoryview(bytearray(len(self._raw))))
                self._congested = True
                self._pause_reading()
                return
        if self._queued >= QUEUED_CHUNKS * self._chunk:
            self._pause_reading()

    def _pause_reading(self) -> None:
        if self._reading and self._transport is not None and not self._lost:
            self._reading = False
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._reading and self._transport is not None and not self._lost:
            self._reading = True
            self._transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _next(self) -> bytes:
        """The next decrypted chunk (not `_pending`); b"" after the close_notify."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            await self._wait()
        data = self._chunks.popleft()
        self._queued -= len(data)
        if self._queued <= QUEUED_CHUNKS * self._chunk // 2:
            self._resume_reading()
        return data

    async def recv(self) -> bytes:
        """The next bytes from the far side; b"" once it closed its side."""
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            return data
        return await self._next()

    async def recv_exactly(self, size: int) -> bytes:
        """Exactly `size` bytes (what follows stays for `recv`)."""
        while len(self._pending) < size:
            more = await self._next()
            if not more:
                raise asyncio.IncompleteReadError(bytes(self._pending), size)
            self._pending += more
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    async def pump_to(self, writer: Writer) -> None:
        """Write everything the far side sends to `writer` until its close_notify, from
        the read callback (ConnectionResetError when the connection breaks first)."""
        transport = writer.transport
        if self._pending:
            transport.write(bytes(self._pending))
            self._pending.clear()
        while self._chunks:
            transport.write(self._chunks.popleft())
        self._queued = 0
        self._sink = transport
        try:
            self._congested = bool(transport.get_write_buffer_size())
            if not self._congested:
                self._resume_reading()
            while True:
                if self._congested:
                    await writer.drain()
                    self._congested = False
                    self._advance()  # what waited in the TLS input
                    if not self._congested:
                        self._resume_reading()
                    continue
                if self._error is not None:
                    raise self._error
                if self._eof:
                    return
                await self._wait()
        finally:
            self._sink = None

    # --- writing ------------------------------------------------------------------

    def _flush(self) -> None:
        if self._out.pending and self._transport is not None and not self._lost:
            self._transport.write(self._out.read())

    def _on_writable(self) -> None:
        callbacks, self._writable = self._writable, []
        for callback in callbacks:
            callback()

    @property
    def writing_paused(self) -> bool:
        """The transport's buffer is above its high-water mark (see `when_writable`)."""
        return self._write_paused and not self._lost

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call `callback` once writing may go on (or the connection is gone)."""
        if self.writing_paused:
            self._writable.append(callback)
        else:
            callback()

    def write_nowait(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt `data` and hand the records to the transport (`writing_paused` says
        whether to wait); ConnectionResetError when the connection is gone."""
        if self._lost or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError(f"{self.label}: connection closed")
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise ConnectionResetError(f"{self.label}: {exc.reason or exc}") from None
        self._flush()

    async def send(self, data: bytes | memoryview) -> None:
        """Encrypt and send all of `data` (back-pressure: waits while the transport's
        buffer is above its high-water mark)."""
        if not data:
            return
        self.write_nowait(data)
        if self.writing_paused:
            writable: asyncio.Future[None] = self._loop.create_future()

            def wake() -> None:
                if not writable.done():
                    writable.set_result(None)

            self.when_writable(wake)
            await writable
            if self._lost:
                raise ConnectionResetError(f"{self.label}: connection lost")

    def close_write_nowait(self) -> None:
        """TLS close_notify: the far side sees EOF and may still send."""
        if self._wrote_close:
            return
        self._wrote_close = True
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:  # sent; the far side's close_notify may come later
            pass
        except ssl.SSLError as exc:
            raise ConnectionResetError(f"{self.label}: {exc.reason or exc}") from None
        self._flush()

    async def close_write(self) -> None:
        """TLS close_notify: the far side sees EOF and may still send."""
        self.close_write_nowait()

    async def close(self) -> None:
        """Close once what was sent is written."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once (the far side sees a connection without close_notify: a reset)."""
        if self._transport is not None:
            _no_linger(self._transport)
            self._transport.abort()


class _TcpPipe(asyncio.BufferedProtocol):
    """The TCP side of `splice_tcp`: what it reads is encrypted onto the TLS stream at
    once (reading pauses while the stream's transport is full); it is `pump_to`'s
    writer for the other way."""

    def __init__(self, stream: TlsStream, chunk: int) -> None:
        self._stream = stream
        self._chunk = chunk
        self._buf = memoryview(bytearray(min(chunk, FIRST_READ)))
        self._transport: asyncio.Transport | None = None
        self._paused = False          # our transport is above its high-water mark
        self._drained: asyncio.Future[None] | None = None
        self.up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the TCP side's EOF became the stream's close_notify, or failed."""

    @property
    def transport(self) -> asyncio.WriteTransport:
        assert self._transport is not None
        return self._transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buf

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._stream.write_nowait(self._buf[:nbytes])
        except ConnectionError as exc:
            self._fail(exc)
            return
        if nbytes == len(self._buf) < self._chunk:  # reads fill it: read more at once
            self._buf = memoryview(bytearray(min(2 * nbytes, self._chunk)))
        if self._stream.writing_paused and self._transport is not None:
            self._transport.pause_reading()
            self._stream.when_writable(self._resume)

    def _resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def eof_received(self) -> bool:
        try:
            self._stream.close_write_nowait()
        except ConnectionError as exc:
            self._fail(exc)
            return True
        if not self.up.done():
            self.up.set_result(None)
        return True  # the other way may still write to it

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionResetError(f"the TCP connection broke ({exc})" if exc
                                        else "the TCP connection closed"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _fail(self, exc: ConnectionError) -> None:
        if not self.up.done():
            self.up.set_exception(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self) -> None:
        while self._paused and self._transport is not None \
                and not self._transport.is_closing():
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the TCP connection closed")


async def splice_tcp(stream: TlsStream, sock: socket.socket, chunk: int, name: str) -> None:
    """Bytes both ways between `stream` and a connected TCP socket (owned from here on);
    each side's EOF is a half-close on the other. When either breaks, the TCP side is
    reset and the error propagates (the caller aborts the stream)."""
    loop = asyncio.get_running_loop()
    try:
        sock.setblocking(False)
        transport, pipe = await loop.connect_accepted_socket(
            lambda: _TcpPipe(stream, chunk), sock)
    except BaseException:
        sock.close()
        raise

    async def up() -> None:
        await pipe.up

    async def down() -> None:
        await stream.pump_to(pipe)
        if not transport.is_closing():
            transport.write_eof()

    try:
        await run_pair(up(), down(), (f"raw-in {name}", f"raw-out {name}"))
    except BaseException:
        _no_linger(transport)
        transport.abort()
        raise
    transport.close()


async def send_message(stream: TlsStream, message: Message, *, magic: bool = False) -> None:
    """A header (with MAGIC first) or an answer: 4-byte length, then the message."""
    body = message.SerializeToString()
    await stream.send((MAGIC if magic else b"") + struct.pack(">I", len(body)) + body)


async def read_message(stream: TlsStream, kind: type[M], *, magic: bool = False) -> M:
    """The message `send_message` sent; ValueError when it is not one."""
    if magic and await stream.recv_exactly(len(MAGIC)) != MAGIC:
        raise ValueError("not a raw dial (no TPRD header)")
    (size,) = struct.unpack(">I", await stream.recv_exactly(4))
    if size > MAX_MESSAGE:
        raise ValueError(f"a {size}-byte header is too large")
    message: M = kind()
    message.ParseFromString(await stream.recv_exactly(size))
    return message


def server_context(cert_and_key_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 server context for a PEM certificate and key held in memory (a memfd: the
    manager's root filesystem is read-only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    fd = os.memfd_create("tp-raw-dial-cert")
    try:
        os.write(fd, cert_and_key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context


def client_context(certificate: bytes) -> ssl.SSLContext:
    """TLS 1.3 client context whose only root is the pinned `certificate` (PEM)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=certificate.decode())
    return context
