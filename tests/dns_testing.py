"""A fake upstream DNS server and a fake manager lookup, for the daemon's resolver tests
(tests/connect/test_resolver.py and the netns routing helper)."""

from __future__ import annotations

import asyncio
from typing import cast

import dns.message
import dns.rrset
from tp_protocol import manager_pb2 as mpb


class Upstream(asyncio.DatagramProtocol):
    """A real UDP DNS server answering every A query with 192.0.2.1."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.names: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        query = dns.message.from_wire(data)
        self.names.append(query.question[0].name.to_text())
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                   "192.0.2.1"))
        self.transport.sendto(response.to_wire(), addr)



async def lookup(name: str, qtype: int) -> mpb.DNSResponse:
    fq = name if name.endswith(".") else name + "."
    if fq == "kubernetes.default.":
        return mpb.DNSResponse(rcode=0, cluster_name=True, records=[mpb.DNSRecord(
            name=fq, type=1, ttl=5, ip="10.96.0.1")])
    if fq.endswith(".svc.cluster.local."):
        return mpb.DNSResponse(rcode=3, cluster_name=True)
    return mpb.DNSResponse(cluster_name=False)
