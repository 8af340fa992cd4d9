"""The daemon's resolver: cluster names through the manager, the rest upstream.

nftables redirects the workstation's DNS queries (port 53 towards the nameservers of
/etc/resolv.conf, which is never rewritten) to this resolver on 127.0.0.1. Each query
goes to the manager's `LookupDNS`; when the manager says it is not a cluster name, the
raw query is forwarded to the original nameserver from a socket carrying the daemon's
SO_MARK, which the nft rules let through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from tp_protocol import manager_pb2 as mpb
from tp_protocol.aio import DatagramReplies

log = logging.getLogger(__name__)

Lookup = Callable[[str, int], Awaitable[mpb.DNSResponse]]
"""Asks the manager about (name, qtype)."""


def system_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """IPv4 nameservers of resolv.conf, in order (the upstreams of forwarded queries)."""
    servers = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
                servers.append(parts[1])
    return servers


def _rdata_text(rec: mpb.DNSRecord) -> str:
    if rec.type in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rec.ip
    if rec.type == dns.rdatatype.SRV:
        return f"{rec.priority} {rec.weight} {rec.port} {rec.target}"
    return rec.target


def build_answer(query: dns.message.Message, answer: mpb.DNSResponse) -> dns.message.Message:
    """A DNS response to `query` from the manager's records (authoritative)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.RA
    response.set_rcode(dns.rcode.Rcode.make(answer.rcode))
    rrsets: dict[tuple[str, int], dns.rrset.RRset] = {}
    for rec in answer.records:
        key = (rec.name, rec.type)
        if key not in rrsets:
            rrsets[key] = dns.rrset.RRset(dns.name.from_text(rec.name), dns.rdataclass.IN,
                                          dns.rdatatype.RdataType.make(rec.type))
            rrsets[key].update_ttl(max(rec.ttl, 0))
        rrsets[key].add(dns.rdata.from_text(dns.rdataclass.IN, rec.type, _rdata_text(rec)))
    response.answer.extend(rrsets.values())
    return response


class Resolver:
    """UDP and TCP DNS server on 127.0.0.1:<port>."""

    def __init__(self, lookup: Lookup, upstreams: Sequence[str], *, timeout: float,
                 cache_ttl: float, mark: int) -> None:
        self._lookup = lookup
        self.upstreams = list(upstreams)
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._mark = mark
        self._cache: dict[tuple[str, int], tuple[float, mpb.DNSResponse]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.queries = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        # TCP first on an ephemeral port, then UDP on the same number.
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramReplies(self.answer, self._spawn, log, "dns-udp-query"),
            local_addr=(host, self.port))
        self._udp = transport
        return self.port

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format (None when it cannot be parsed)."""
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except Exception as e:
            log.info("dns: unparsable query: %s", e)
            return None
        if not query.question:
            return dns.message.make_response(query).to_wire()
        question = query.question[0]
        name, qtype = question.name.to_text(), int(question.rdtype)
        try:
            cluster = await self._cluster_answer(name, qtype)
        except Exception as e:
            # Manager unreachable (reconnecting): let the upstream answer what it can.
            log.info("dns: LookupDNS %s failed: %s", name, e)
            cluster = None
        if cluster is not None:
            return build_answer(query, cluster).to_wire()
        forwarded = await self._forward(wire)
        if forwarded is not None:
            return forwarded
        failure = dns.message.make_response(query)
        failure.set_rcode(dns.rcode.SERVFAIL)
        return failure.to_wire()

    async def _cluster_answer(self, name: str, qtype: int) -> mpb.DNSResponse | None:
        key = (name.lower(), qtype)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            answer = hit[1]
        else:
            answer = await asyncio.wait_for(self._lookup(name, qtype), self._timeout)
            self._cache[key] = (now + self._cache_ttl, answer)
            if len(self._cache) > 4096:
                self._cache.clear()
        return answer if answer.cluster_name else None

    async def _forward(self, wire: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            # "ip" or "ip:port" (tests run an upstream on a high port)
            host, _, port = upstream.partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if self._mark:
                    with contextlib.suppress(PermissionError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self._mark)
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, int(port or 53)))
                await loop.sock_sendall(sock, wire)
                return await asyncio.wait_for(loop.sock_recv(sock, 65535), self._timeout)
            except (OSError, TimeoutError) as e:
                log.info("dns: upstream %s: %s", upstream, e or "timed out")
            finally:
                sock.close()
        return None

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await self.answer(await reader.readexactly(size))
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
