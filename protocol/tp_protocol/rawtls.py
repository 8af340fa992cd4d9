"""Raw dials (manager.proto `RawDialHeader`): a tunneled TCP connection as its own TLS
connection, the bytes with no framing but TLS records. Used by the daemon (dialer) and
the traffic-manager (listener).

`TlsStream` drives an `ssl.SSLObject` over a non-blocking socket with the event loop's
`sock_recv_into` / `sock_sendall` rather than asyncio's SSL transport, for two reasons:
half-close (a TLS 1.3 close_notify is one direction's end, and the far side may still
send; asyncio's transport has no `write_eof` over TLS) and speed (reads of a whole
`chunk` decrypted into one buffer, no stream-reader copies, no per-chunk tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from typing import TypeVar, cast

from google.protobuf.message import Message

MAGIC = b"TPRD"
"""The first bytes of a raw dial's header (after the TLS handshake)."""

MAX_MESSAGE = 16 * 1024
"""Largest header or answer accepted (they are a few dozen bytes)."""

M = TypeVar("M", bound=Message)


class TlsStream:
    """One TLS connection as a byte `Stream` (`tp_protocol.pumps`), with half-close.

    One reader and any number of writers at a time: writes are serialised by a lock, so
    the records a read produced (TLS 1.3 key updates) never interleave with data."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject,
                 bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO], chunk: int, label: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._tls = tls
        self._in, self._out = bios
        self._raw = bytearray(chunk)
        self._raw_view = memoryview(self._raw)
        self._plain = bytearray(chunk)
        self._plain_view = memoryview(self._plain)
        self._pending = bytearray()   # decrypted, not yet handed out (after a header)
        self._eof = False             # the peer's close_notify (or the socket's EOF)
        self._wrote_close = False
        self._lock = asyncio.Lock()
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
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
            stream = cls(sock, tls, (incoming, outgoing), chunk, f"{host}:{port}")
            await stream._handshake()
        except BaseException:
            sock.close()
            raise
        return stream

    @classmethod
    async def accept(cls, sock: socket.socket, context: ssl.SSLContext, chunk: int,
                     label: str) -> TlsStream:
        """The server side of an accepted socket past its handshake (caller bounds it)."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        stream = cls(sock, tls, (incoming, outgoing), chunk, label)
        await stream._handshake()
        return stream

    async def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError(f"{self.label}: closed during the TLS "
                                               "handshake") from None
        await self._flush()

    # --- bytes ----------------------------------------------------------------------

    async def _fill(self) -> bool:
        """Bytes from the socket into the TLS input; False at the socket's EOF."""
        n = await self._loop.sock_recv_into(self._sock, self._raw)
        if n == 0:
            self._in.write_eof()
            return False
        self._in.write(self._raw_view[:n])
        return True

    async def _flush(self) -> None:
        async with self._lock:
            if self._out.pending:
                await self._loop.sock_sendall(self._sock, self._out.read())

    def _decrypt(self) -> int:
        """Decrypt what the TLS input holds into the plain buffer; its length."""
        view, n = self._plain_view, 0
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
            raise ConnectionResetError(f"{self.label}: {exc.reason or exc}") from None
        return n

    async def _recv_new(self) -> bytes:
        while not self._eof:
            n = self._decrypt()
            if self._out.pending:
                await self._flush()
            if n:
                return bytes(self._plain_view[:n])
            if self._eof:
                break
            if not await self._fill():
                # EOF under TLS: a final read says whether a close_notify came first
                n = self._decrypt()
                if n:
                    return bytes(self._plain_view[:n])
                if not self._eof:
                    raise ConnectionResetError(f"{self.label}: closed without close_notify")
        return b""

    async def recv(self) -> bytes:
        """The next bytes from the far side; b"" once it closed its side."""
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            return data
        return await self._recv_new()

    async def recv_exactly(self, size: int) -> bytes:
        """Exactly `size` bytes (what follows stays for `recv`)."""
        while len(self._pending) < size:
            more = await self._recv_new()
            if not more:
                raise asyncio.IncompleteReadError(bytes(self._pending), size)
            self._pending += more
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    async def send(self, data: bytes | memoryview) -> None:
        """Encrypt and send all of `data` (back-pressure: returns once the socket took it)."""
        if not data:
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise ConnectionResetError(f"{self.label}: {exc.reason or exc}") from None
        await self._flush()

    async def close_write(self) -> None:
        """TLS close_notify: the far side sees EOF and may still send."""
        if self._wrote_close:
            return
        self._wrote_close = True
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.unwrap()
        await self._flush()

    async def close(self) -> None:
        self._sock.close()

    def abort(self) -> None:
        """Close at once (the far side sees a connection without close_notify: a reset)."""
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
        self._sock.close()


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
