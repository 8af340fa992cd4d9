"""Proxy mode: the SOCKS5 server resolves names remotely and splices bytes both ways."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from tp_daemon.proxy import Socks5Proxy
from tp_daemon.streams import Stream, TcpStream


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


class _Cluster:
    """Stands in for the tunnel: 10.96.0.7 is the echo server; names are counted."""

    def __init__(self, echo_port: int) -> None:
        self.echo_port = echo_port
        self.dialed: list[tuple[str, int]] = []

    async def dial(self, ip: str, port: int) -> Stream:
        self.dialed.append((ip, port))
        return await TcpStream.open("127.0.0.1", self.echo_port)

    async def resolve(self, name: str) -> str | None:
        return "10.96.0.7" if name == "echo.default" else None


async def _socks_connect(proxy_port: int, host: str, port: int
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port))
    reply = await reader.readexactly(10)
    return reader, writer, reply[1]


@pytest.mark.timeout(20)
async def test_a_cluster_name_is_resolved_remotely_and_dialed_through_the_tunnel(
        echo_port: int) -> None:
    cluster = _Cluster(echo_port)
    proxy = Socks5Proxy(cluster.dial, cluster.resolve, ["10.96.0.0/16"], dial_timeout=5)
    await proxy.start()
    try:
        reader, writer, code = await _socks_connect(proxy.port, "echo.default", 3000)
        assert code == 0
        payload = bytes(range(256)) * 4096  # 1 MiB, checked byte for byte
        writer.write(payload)
        received = await reader.readexactly(len(payload))
        assert received == payload
        assert cluster.dialed == [("10.96.0.7", 3000)]
        writer.close()
    finally:
        await proxy.close()


@pytest.mark.timeout(20)
async def test_a_name_outside_the_cluster_is_connected_directly(echo_port: int) -> None:
    cluster = _Cluster(echo_port)
    proxy = Socks5Proxy(cluster.dial, cluster.resolve, ["10.96.0.0/16"], dial_timeout=5)
    await proxy.start()
    try:
        reader, writer, code = await _socks_connect(proxy.port, "localhost", echo_port)
        assert code == 0
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert cluster.dialed == []
        writer.close()
    finally:
        await proxy.close()


@pytest.mark.timeout(20)
async def test_a_refused_destination_is_reported_to_the_socks_client() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    cluster = _Cluster(closed_port)
    proxy = Socks5Proxy(cluster.dial, cluster.resolve, ["10.96.0.0/16"], dial_timeout=5)
    await proxy.start()
    try:
        _, writer, code = await _socks_connect(proxy.port, "echo.default", 80)
        assert code != 0
        writer.close()
    finally:
        await proxy.close()
