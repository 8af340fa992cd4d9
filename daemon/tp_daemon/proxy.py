"""Local entry points into the tunnel: the transparent proxy (root) and SOCKS5 (no root).

The transparent proxy accepts connections that nftables redirected to it, reads where
they were going (`SO_ORIGINAL_DST`) and splices them to a `Stream` from the dialer.
The SOCKS5 server (RFC 1928, no authentication, CONNECT only) resolves domain names
remotely: a cluster name is dialed through the tunnel, any other name and address
outside the cluster ranges is connected directly from the workstation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

from tp_daemon.streams import READ_BUFFER, Stream, TcpStream, ViewStream, close_server, splice

log = logging.getLogger(__name__)

Dialer = Callable[[str, int], Awaitable[Stream | ViewStream]]
"""Opens a stream to (ip, port) inside the cluster."""

Resolver = Callable[[str], Awaitable[str | None]]
"""Cluster IP of a name, or None when it is not a cluster name."""

SO_ORIGINAL_DST = 80


def original_dst(sock: socket.socket) -> tuple[str, int]:
    """Where a redirected IPv4 connection was headed (struct sockaddr_in)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


class _Server:
    """An asyncio TCP server on 127.0.0.1 that tracks and cancels its connections."""

    name = "proxy"

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, backlog=512,
                                                  limit=READ_BUFFER)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
        try:
            await self.handle(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as e:
            log.info("%s: connection ended: %s", self.name, e)
        except asyncio.CancelledError:
            pass  # close() ends connections; a server callback has nobody to re-raise to
        except Exception:
            log.exception("%s: connection failed", self.name)
        finally:
            self._conns.discard(task)
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening and end every connection."""
        await close_server(self._server, self._conns)


class TransparentProxy(_Server):
    """Target of the nft `redirect`: each connection goes to its original destination."""

    name = "transparent-proxy"

    def __init__(self, dial: Dialer) -> None:
        super().__init__()
        self._dial = dial

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        ip, port = original_dst(sock)
        try:
            stream = await self._dial(ip, port)
        except ConnectionError as e:
            # Reset rather than close, so the application sees "connection refused/reset".
            log.info("dial %s:%d failed: %s", ip, port, e)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        await splice(reader, writer, stream, f"tp-{ip}:{port}")


# SOCKS5 reply codes (RFC 1928, section 6)
_OK, _FAILURE, _NOT_ALLOWED, _HOST_UNREACHABLE, _REFUSED, _CMD, _ATYP = 0, 1, 2, 4, 5, 7, 8


class Socks5Proxy(_Server):
    """SOCKS5 with remote DNS: names resolve in the cluster first, then locally."""

    name = "socks5"

    def __init__(self, dial: Dialer, resolve: Resolver, cluster_ranges: Sequence[str],
                 *, dial_timeout: float) -> None:
        super().__init__()
        self._dial = dial
        self._resolve = resolve
        self._ranges = [ipaddress.ip_network(r) for r in cluster_ranges]
        self._dial_timeout = dial_timeout

    def set_ranges(self, cluster_ranges: Sequence[str]) -> None:
        self._ranges = [ipaddress.ip_network(r) for r in cluster_ranges]

    def _in_cluster(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self._ranges)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, nmethods = await reader.readexactly(2)
        if version != 5:
            return
        methods = await reader.readexactly(nmethods)
        if 0 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x00")
        _, cmd, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("idna")
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            await self._reply(writer, _ATYP)
            return
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if cmd != 1:
            await self._reply(writer, _CMD)
            return
        try:
            stream = await self._open(host, port)
        except (OSError, TimeoutError) as e:
            log.info("socks5: %s:%d: %s", host, port, e)
            code = _REFUSED if isinstance(e, ConnectionRefusedError) else _HOST_UNREACHABLE
            await self._reply(writer, code)
            return
        await self._reply(writer, _OK)
        await splice(reader, writer, stream, f"socks-{host}:{port}")

    async def _open(self, host: str, port: int) -> Stream | ViewStream:
        try:
            ipaddress.ip_address(host)
            ip: str | None = host
        except ValueError:
            ip = await self._resolve(host)
            if ip is None:  # not a cluster name: the workstation's own network
                return await asyncio.wait_for(TcpStream.open(host, port), self._dial_timeout)
        assert ip is not None
        if self._in_cluster(ip):
            return await self._dial(ip, port)
        return await asyncio.wait_for(TcpStream.open(ip, port), self._dial_timeout)

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
        await writer.drain()
