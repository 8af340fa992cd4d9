"""Cluster-info discovery: pod CIDRs, service CIDR, cluster domain, DNS and API IPs.

The service CIDR is found the way Telepresence finds it: a dry-run Service with a
clusterIP that no cluster uses (1.1.1.1) is refused with "The range of valid IPs
is <cidr>". The cluster domain and DNS address come from the manager pod's own
resolv.conf (`search <ns>.svc.<domain> svc.<domain> <domain>`, `nameserver <ip>`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tp_cluster.kube import Kube, KubeError

log = logging.getLogger(__name__)

PROBE_IP = "1.1.1.1"
"""A clusterIP outside every sensible service range; its refusal names the range."""

_VALID_RANGE = re.compile(
    r"range of valid IPs (?:is|are) ([0-9A-Fa-f.:/]+(?:\s*,\s*[0-9A-Fa-f.:/]+)*)")


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)


@dataclass
class ClusterFacts:
    pod_cidrs: list[str]
    service_cidr: str
    cluster_domain: str
    dns_ip: str
    kube_api_ip: str


def parse_service_cidr(message: str) -> str | None:
    """The first CIDR of "The range of valid IPs is 10.96.0.0/12" in an API error."""
    match = _VALID_RANGE.search(message)
    if not match:
        return None
    for candidate in match.group(1).split(","):
        try:
            return str(ipaddress.ip_network(candidate.strip().rstrip("."), strict=False))
        except ValueError:
            continue
    return None


def parse_resolv_conf(text: str) -> ResolvConf:
    conf = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            conf.nameservers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            conf.search = words[1:]
    return conf


def cluster_domain_from_search(search: list[str]) -> str | None:
    """`svc.cluster.local` in a pod's search list -> `cluster.local`."""
    for entry in (e.rstrip(".") for e in search):
        if entry.startswith("svc."):
            return entry[len("svc."):]
    return None


def covering_cidrs(ips: Iterable[str]) -> list[str]:
    """Ranges for pod IPs when nodes name no podCIDR: a /24 (v4) or /64 (v6) each, merged."""
    nets4: list[ipaddress.IPv4Network] = []
    nets6: list[ipaddress.IPv6Network] = []
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if isinstance(addr, ipaddress.IPv4Address):
            nets4.append(ipaddress.IPv4Network(f"{addr}/24", strict=False))
        else:
            nets6.append(ipaddress.IPv6Network(f"{addr}/64", strict=False))
    merged = [*ipaddress.collapse_addresses(nets4), *ipaddress.collapse_addresses(nets6)]
    return [str(n) for n in merged]


def covering_service_cidr(ips: Iterable[str]) -> str | None:
    """Fallback when the probe says nothing: the smallest network of all ClusterIPs, >= /16."""
    addrs = [ipaddress.ip_address(ip) for ip in ips if ip]
    v4 = [a for a in addrs if isinstance(a, ipaddress.IPv4Address)]
    if not v4:
        return None
    prefix = 16
    while prefix > 8:
        net = ipaddress.IPv4Network(f"{v4[0]}/{prefix}", strict=False)
        if all(a in net for a in v4):
            return str(net)
        prefix -= 1
    return None


def discover(kube: Kube, namespace: str, resolv_conf: Path = Path("/etc/resolv.conf"),
             ) -> ClusterFacts:
    """Ask the API server (blocking; run it in a thread)."""
    pod_cidrs = kube.node_pod_cidrs() or covering_cidrs(kube.pod_ips())

    service_cidr = parse_service_cidr(kube.refused_service_message(namespace, PROBE_IP))
    if service_cidr is None:
        log.warning("service CIDR probe gave no range; covering the existing ClusterIPs")
        service_cidr = covering_service_cidr(kube.service_cluster_ips()) or ""

    try:
        conf = parse_resolv_conf(resolv_conf.read_text(encoding="utf-8"))
    except OSError as exc:
        log.warning("cannot read %s (%s); using defaults for DNS", resolv_conf, exc)
        conf = ResolvConf()
    domain = cluster_domain_from_search(conf.search) or "cluster.local"
    dns_ip = kube.service_cluster_ip("kube-system", "kube-dns") or (
        conf.nameservers[0] if conf.nameservers else "")
    try:
        api_ip = kube.service_cluster_ip("default", "kubernetes") or ""
    except KubeError as exc:
        log.warning("cannot read the kubernetes service: %s", exc)
        api_ip = ""
    return ClusterFacts(pod_cidrs=pod_cidrs, service_cidr=service_cidr,
                        cluster_domain=domain, dns_ip=dns_ip, kube_api_ip=api_ip)
