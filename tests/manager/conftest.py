"""Fixtures: a real traffic-manager (grpc.aio on loopback), a tiny cluster DNS, an echo server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from manager_testing import Manager, running_manager
from manager_testing import fast_settings as fast_settings_for
from tp_cluster.manager.dns import ClusterResolver

ZONE = {
    "dataprocessingservice.demo.svc.cluster.local": "10.96.3.1",
    "web.default.svc.cluster.local": "10.96.3.2",
    "web.team.svc.cluster.local": "10.96.3.3",
    "kubernetes.default.svc.cluster.local": "10.96.0.1",
}


class _DNSProtocol(asyncio.DatagramProtocol):
    """Answers A for ZONE, NOERROR/NODATA for other types of those names, else NXDOMAIN."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.asked: list[str] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        self.asked.append(name)
        response = dns.message.make_response(query)
        if name in ZONE:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 5, "IN", "A", ZONE[name]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


@dataclasses.dataclass
class ClusterDNS:
    port: int
    protocol: _DNSProtocol


@pytest.fixture
async def cluster_dns() -> AsyncIterator[ClusterDNS]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _DNSProtocol, local_addr=("127.0.0.1", 0))
    yield ClusterDNS(transport.get_extra_info("sockname")[1], protocol)
    transport.close()


@pytest.fixture
def fast_settings() -> Iterator[Any]:
    """Short TTL and sweeps, restored afterwards (settings are process-wide)."""
    with fast_settings_for() as settings:
        yield settings


@pytest.fixture
async def manager(cluster_dns: ClusterDNS, fast_settings: Any) -> AsyncIterator[Manager]:
    resolver = ClusterResolver("127.0.0.1", "cluster.local", 2.0, port=cluster_dns.port)
    async with running_manager(resolver, grace=1.0) as manager:
        yield manager


@pytest.fixture
async def echo_server() -> AsyncIterator[int]:
    """Echoes every byte; on EOF from the peer it finishes sending, then half-closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(256 * 1024):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
