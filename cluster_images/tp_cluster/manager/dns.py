"""`LookupDNS`: cluster names resolved with Kubernetes search semantics.

A client in namespace `ns` asks for a name the way an application on its machine
wrote it. The manager resolves it as a pod in `ns` would (resolv.conf search
`ns.svc.<domain> svc.<domain> <domain>`, ndots 5) through the cluster DNS server:

- `name.<domain>` (fully qualified): authoritative, NXDOMAIN included;
- `svc` -> `svc.ns.svc.<domain>`; `svc.other` -> `svc.other.svc.<domain>`;
  `kubernetes.default` -> `kubernetes.default.svc.<domain>`; ...
- reverse names (`*.in-addr.arpa`, `*.ip6.arpa`) are asked as they are.

A name that resolves through none of these is not a cluster name: the answer says
`cluster_name=False` and the daemon forwards the query to its upstream resolver.

Errors::

    DNSLookupError     bad query (empty or malformed name)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from tp_cluster.errors import ClusterError

log = logging.getLogger(__name__)

NDOTS = 5
"""Kubernetes pods' resolv.conf option: names with fewer dots are searched first."""


class DNSLookupError(ClusterError, ValueError):
    """The query itself is unusable; the message says why."""


@dataclass
class Record:
    name: str
    type: int
    ttl: int
    ip: str = ""
    target: str = ""
    port: int = 0
    priority: int = 0
    weight: int = 0


@dataclass
class Answer:
    rcode: int
    cluster_name: bool
    records: list[Record] = field(default_factory=list)


def _normalize(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if not name:
        raise DNSLookupError("empty DNS name: ask for a name such as 'svc.namespace'")
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise DNSLookupError(f"malformed DNS name {name!r}: {exc}") from exc
    return name


def candidates(name: str, namespace: str, domain: str) -> tuple[list[str], bool]:
    """Names to ask the cluster DNS for, in order, and whether the answer is authoritative.

    `name` is normalized (no trailing dot, lower case).
    """
    domain = domain.strip(".").lower()
    if name == domain or name.endswith("." + domain):
        return [name], True
    if name.endswith((".in-addr.arpa", ".ip6.arpa")):
        return [name], False
    if name.count(".") >= NDOTS:
        return [], False
    return [f"{name}.{namespace}.svc.{domain}", f"{name}.svc.{domain}", f"{name}.{domain}"], False


class ClusterResolver:
    """Asks the cluster DNS server (UDP, TCP when truncated) with a timeout per query."""

    def __init__(self, server: str, domain: str, timeout: float, port: int = 53) -> None:
        self.server = server
        self.port = port
        self.domain = domain
        self.timeout = timeout

    async def _ask(self, fqdn: str, qtype: int) -> dns.message.Message | None:
        query = dns.message.make_query(fqdn + ".", dns.rdatatype.RdataType.make(qtype))
        try:
            response = await dns.asyncquery.udp(query, self.server, timeout=self.timeout,
                                                port=self.port)
            if response.flags & dns.flags.TC:
                response = await dns.asyncquery.tcp(query, self.server, timeout=self.timeout,
                                                    port=self.port)
        except (dns.exception.DNSException, OSError) as exc:
            log.warning("cluster DNS %s:%d failed for %s: %s", self.server, self.port, fqdn, exc)
            return None
        return response

    async def lookup(self, name: str, qtype: int, namespace: str) -> Answer:
        asked = _normalize(name)
        names, authoritative = candidates(asked, namespace or "default", self.domain)
        failed = False
        for candidate in names:
            response = await self._ask(candidate, qtype)
            if response is None:
                failed = True
                continue
            rcode = response.rcode()
            if rcode == dns.rcode.NOERROR:
                return Answer(rcode, True, _records(response, candidate, asked))
            if authoritative:
                return Answer(rcode, True)
            if rcode == dns.rcode.NXDOMAIN:
                continue
            failed = True
        if authoritative and failed:
            return Answer(dns.rcode.SERVFAIL, True)
        return Answer(dns.rcode.NXDOMAIN, False)


def _records(response: dns.message.Message, candidate: str, asked: str) -> list[Record]:
    """Answer records; the searched name is renamed to the name the client asked for."""
    records: list[Record] = []
    for rrset in response.answer:
        owner = rrset.name.to_text().rstrip(".").lower()
        name = asked + "." if owner == candidate else owner + "."
        for rdata in rrset:
            record = Record(name=name, type=int(rrset.rdtype), ttl=int(rrset.ttl))
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                record.ip = rdata.address
            elif rrset.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.PTR):
                record.target = rdata.target.to_text()
            elif rrset.rdtype == dns.rdatatype.SRV:
                record.target = rdata.target.to_text()
                record.port, record.priority, record.weight = (
                    int(rdata.port), int(rdata.priority), int(rdata.weight))
            else:
                continue
            records.append(record)
    return records
