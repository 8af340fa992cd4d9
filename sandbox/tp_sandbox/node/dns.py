"""Cluster DNS for the sandbox: a small authoritative server for the cluster domain.

It listens on 172.30.0.10:53 (UDP and TCP) inside the node netns; pods reach it as
the `kube-dns` Service (10.96.0.10, DNAT by kube-proxy). It answers from a
`ServiceCache` kept by watches, like CoreDNS' kubernetes plugin:

- ``svc.ns.svc.<domain>`` A: the ClusterIP; for a headless Service the ready
  endpoint IPs; ``hostname.svc.ns.svc.<domain>`` for endpoints with a hostname and
  ``a-b-c-d.svc.ns.svc.<domain>`` for each headless endpoint;
- ``_port._proto.svc.ns.svc.<domain>`` SRV for named ports (target and port of the
  ClusterIP, or of each ready endpoint of a headless Service), with A records added;
- ExternalName Services: a CNAME to the external name (not chased);
- ``a-b-c-d.ns.pod.<domain>`` A: that IP (CoreDNS' "pods insecure" mode);
- other names in the domain: NXDOMAIN; a known name with no record of the asked type
  (AAAA: the sandbox is IPv4 only): NOERROR and no answer; both with the SOA.

Names outside the cluster domain get REFUSED: the sandbox has no upstream resolver
(nothing leaves the sandbox), and REFUSED makes a stub resolver give up at once.
Reverse (PTR) lookups are outside the domain too, so they are refused as well.
Names are case-insensitive.

`ClusterDNS.start()` also makes sure `kube-system/kube-dns` exists: a selector-less
Service with clusterIP `settings.sandbox.dns_service_ip`, ports dns 53/UDP and
dns-tcp 53/TCP, and an Endpoints object and EndpointSlice pointing at 172.30.0.10.

Errors::

    ClusterDNSError           base
    └── DNSBindError          the listening address is missing or taken
(API failures are `errors.ApiError`, from the node's adapter `kubeapi.KubeApi`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import kubernetes
from tp_protocol.settings import get_settings

from tp_sandbox import netns
from tp_sandbox.node.errors import ApiError
from tp_sandbox.node.kubeapi import KubeApi
from tp_sandbox.node.proxy import KINDS, Reflector, ServiceCache, ServiceInfo
from tp_sandbox.paths import Instance

log = logging.getLogger(__name__)

DNS_ADDRESS = "172.30.0.10"
DNS_PORT = 53
MANAGED_BY = "tp-sandbox-dns"


class ClusterDNSError(Exception):
    """Base of the cluster DNS server's errors."""


class DNSBindError(ClusterDNSError):
    """The server cannot listen on its address."""


# -- the zone ---------------------------------------------------------------------------


def _dashed(ip: str) -> str:
    return ip.replace(".", "-")


@dataclass
class Zone:
    """The cluster domain's records, built from a snapshot of Services."""

    domain: str
    ttl: int
    a: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """SRV owner -> (port, target); priority 0, equal weights."""
    cname: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    """Every name that exists (for NOERROR without data), including empty non-terminals."""

    @classmethod
    def build(cls, services: Sequence[ServiceInfo], domain: str, ttl: int) -> Zone:
        zone = cls(domain.lower().strip("."), ttl)
        d = zone.domain
        for svc in services:
            base = f"{svc.name}.{svc.namespace}.svc.{d}".lower()
            zone._exists(base)
            if svc.external_name:
                zone.cname[base] = svc.external_name.rstrip(".").lower()
                continue
            ready = [a for a in svc.addresses if a.ready]
            if svc.cluster_ip:
                zone.a[base] = [svc.cluster_ip]
            elif svc.headless:
                zone.a[base] = [a.ip for a in ready]
                for addr in svc.addresses:
                    zone._add_a(f"{_dashed(addr.ip)}.{base}", addr.ip)
                    if addr.hostname:
                        zone._add_a(f"{addr.hostname}.{base}".lower(), addr.ip)
            for port in svc.ports:
                if not port.name or port.protocol not in ("TCP", "UDP"):
                    continue
                owner = f"_{port.name}._{port.protocol.lower()}.{base}".lower()
                zone._exists(owner)
                if svc.cluster_ip:
                    zone.srv[owner] = [(port.port, base)]
                elif svc.headless:
                    by_ip = {a.ip: a for a in ready}
                    zone.srv[owner] = [
                        (b.port, f"{by_ip[b.ip].hostname or _dashed(b.ip)}.{base}".lower())
                        for b in port.backends if b.ip in by_ip]
        for apex in (d, f"svc.{d}", f"pod.{d}"):
            zone.names.add(apex)
        return zone

    def _add_a(self, name: str, ip: str) -> None:
        self._exists(name)
        ips = self.a.setdefault(name, [])
        if ip not in ips:
            ips.append(ip)

    def _exists(self, name: str) -> None:
        # Every suffix inside the domain exists too (an "empty non-terminal").
        labels = name.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            self.names.add(suffix)
            if suffix == self.domain:
                break

    def _pod_ip(self, name: str) -> str | None:
        """The IP of ``a-b-c-d.<ns>.pod.<domain>``, or None."""
        labels = name.split(".")
        if len(labels) != 3 + len(self.domain.split(".")) or labels[2] != "pod":
            return None
        try:
            return str(ipaddress.IPv4Address(labels[0].replace("-", ".")))
        except ValueError:
            return None

    def in_domain(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    def _soa(self) -> dns.rrset.RRset:
        d = self.domain
        return dns.rrset.from_text(
            d + ".", self.ttl, "IN", "SOA",
            f"ns.dns.{d}. hostmaster.{d}. 1 7200 1800 86400 {self.ttl}")

    def _rrset(self, name: str, rdtype: str, values: Sequence[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name + ".", self.ttl, "IN", rdtype, list(values))

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to one query."""
        response = dns.message.make_response(query)
        response.flags &= ~dns.flags.RA  # no recursion here
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = question.rdtype
        if question.rdclass != dns.rdataclass.IN or not self.in_domain(name):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA

        if name in self.cname:
            response.answer.append(self._rrset(name, "CNAME", [self.cname[name] + "."]))
            return response
        pod_ip = self._pod_ip(name)
        ips = [pod_ip] if pod_ip else self.a.get(name)
        if rdtype in (dns.rdatatype.A, dns.rdatatype.ANY) and ips:
            response.answer.append(self._rrset(name, "A", ips))
        elif rdtype in (dns.rdatatype.SRV, dns.rdatatype.ANY) and self.srv.get(name):
            records = self.srv[name]
            response.answer.append(self._rrset(
                name, "SRV", [f"0 {100 // len(records)} {port} {target}."
                              for port, target in records]))
            for target in sorted({t for _p, t in records}):
                if self.a.get(target):
                    response.additional.append(self._rrset(target, "A", self.a[target]))
        elif rdtype == dns.rdatatype.SOA and name == self.domain:
            response.answer.append(self._soa())
        elif name in self.names or pod_ip or ips is not None:
            response.authority.append(self._soa())  # NOERROR, no data
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa())
        return response


def wire_response(zone: Zone, wire: bytes, max_size: int | None) -> bytes | None:
    """Answer a query in wire format; None for garbage that deserves no answer.

    `max_size` is the UDP limit (None for TCP); an answer that does not fit is sent
    truncated (TC) so that the client retries over TCP.
    """
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    try:
        response = zone.answer(query)
    except Exception:
        log.exception("answering %s failed", query.question)
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.SERVFAIL)
    if max_size is None:
        return response.to_wire()
    limit = max(512, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


# -- kube-dns objects -------------------------------------------------------------------


def kube_dns_objects(cluster_ip: str, address: str = DNS_ADDRESS) -> list[tuple[str, Any]]:
    """(kind, body) of the kube-dns Service, Endpoints and EndpointSlice."""
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    ports = [{"name": "dns", "port": DNS_PORT, "protocol": "UDP"},
             {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP"}]
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                 "ports": [{**p, "targetPort": DNS_PORT} for p in ports]},
    }
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "subsets": [{"addresses": [{"ip": address}], "ports": ports}],
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-node", "namespace": "kube-system",
                     "labels": {**labels, "kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": ports,
    }
    return [("services", service), ("endpoints", endpoints), ("endpointslices", endpoint_slice)]


# -- the server -------------------------------------------------------------------------


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDNS) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = wire_response(self.server.zone(), data, max_size=512)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class ClusterDNS:
    """The cluster DNS server (thread `cluster-dns`) and its watches.

    `netns_name`, `address` and `port` default to the node netns and 172.30.0.10:53;
    tests may pass a filled `cache` and no API client (then no kube-dns objects are
    ensured either).
    """

    def __init__(self, instance: Instance, api_client: kubernetes.client.ApiClient | None,
                 *, cache: ServiceCache | None = None, netns_name: str | None = None,
                 address: str = DNS_ADDRESS, port: int = DNS_PORT) -> None:
        settings = get_settings()
        self.instance = instance
        self.netns = netns_name or instance.node_netns
        self.address = address
        self.port = port
        self.domain = settings.sandbox.cluster_domain
        self.ttl = settings.node.dns_ttl
        self.cache = cache if cache is not None else ServiceCache()
        self._api = KubeApi(api_client) if api_client is not None else None
        self._reflectors = ([] if self._api is None else
                            [Reflector(self._api, kind, self.cache, "cluster-dns")
                             for kind in KINDS])
        self._zone = Zone.build([], self.domain, self.ttl)
        self._zone_version = -1
        self._zone_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)
        self._ensure_thread = threading.Thread(target=self._ensure_kube_dns,
                                               name="cluster-dns-ensure", daemon=True)

    def zone(self) -> Zone:
        """The zone for the cache's current version (rebuilt after changes)."""
        with self._zone_lock:
            if self.cache.version != self._zone_version:
                version, services = self.cache.snapshot()
                self._zone = Zone.build(services, self.domain, self.ttl)
                self._zone_version = version
            return self._zone

    def start(self) -> None:
        """Listen (raises DNSBindError if that fails), then start the watches."""
        self._thread.start()
        limit = get_settings().node.dns_start_timeout
        if not self._started.wait(limit):
            raise DNSBindError(
                f"cluster DNS did not listen within {limit:.0f} s in {self.netns}; see its log")
        if self._start_error is not None:
            self._thread.join(get_settings().sandbox.stop_grace)
            raise DNSBindError(
                f"cluster DNS cannot listen on {self.address}:{self.port} in {self.netns}: "
                f"{self._start_error}; is the node netns up with {self.address} on lo?"
            ) from self._start_error
        for reflector in self._reflectors:
            reflector.start()
        if self._api is not None:
            self._ensure_thread.start()

    def stop(self) -> None:
        self._stop.set()
        grace = get_settings().sandbox.stop_grace
        if self._ensure_thread.is_alive():
            self._ensure_thread.join(grace)
        for reflector in reversed(self._reflectors):
            reflector.stop()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._stop_loop)
        if self._thread.is_alive():
            self._thread.join(grace)

    def _stop_loop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def _bind(self, kind: int) -> socket.socket:
        sock = netns.socket_in(self.netns, socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                # TCP only: on UDP it would let a second server share (steal) the port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            if not self._started.is_set():
                self._start_error = exc
                self._started.set()
            else:
                log.exception("cluster DNS server failed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        udp = self._bind(socket.SOCK_DGRAM)
        try:
            tcp = self._bind(socket.SOCK_STREAM)
        except OSError:
            udp.close()
            raise
        tcp.listen(64)
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp)
        server = await asyncio.start_server(self._tcp_client, sock=tcp)
        log.info("cluster DNS on %s:%d (UDP, TCP) in %s", self.address, self.port, self.netns)
        self._started.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            transport.close()
            await server.wait_closed()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                          ) -> None:
        idle = get_settings().node.dns_tcp_idle_timeout
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), idle)
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(reader.readexactly(length), idle)
                reply = wire_response(self.zone(), data, max_size=None)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _ensure_kube_dns(self) -> None:
        """Create kube-dns's Service, Endpoints and EndpointSlice when missing."""
        assert self._api is not None
        settings = get_settings()
        pending = kube_dns_objects(settings.sandbox.dns_service_ip, self.address)
        while pending and not self._stop.is_set():
            kind, body = pending[0]
            try:
                if self._api.create(kind, "kube-system", body):
                    log.info("created kube-system/kube-dns %s", kind)
                pending.pop(0)
            except ApiError as exc:
                if exc.status == 404 and kind == "endpointslices":
                    pending.pop(0)  # no discovery.k8s.io: Endpoints suffice
                    continue
                log.warning("ensuring kube-dns: %s (retrying)", exc)
                self._stop.wait(settings.node.services_retry_backoff)
            except Exception:
                log.exception("ensuring kube-dns failed (retrying)")
                self._stop.wait(settings.node.services_retry_backoff)
