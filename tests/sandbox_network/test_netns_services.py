"""kube-proxy and cluster DNS in real network namespaces (root).

A node netns and three pod-like netns wired as docs/contracts.md says (veth pairs,
/32 pod addresses, default route via 169.254.1.1); pods a and b run
`python -m http.server`, pod c is the client. The proxy and the DNS server get their
Services from a `ServiceCache` filled here, so no API server is needed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from network_objects import (
    endpoint,
    endpoint_slice,
    kubernetes_service,
    port,
    service,
    slice_port,
)
from sandbox_testing import wait_for
from tp_sandbox import netns
from tp_sandbox.node.dns import ClusterDNS, DNSBindError, kube_dns_objects
from tp_sandbox.node.proxy import TABLE, ServiceCache, ServiceProxy, ServiceProxyError
from tp_sandbox.paths import Instance

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

POD_IPS = {"a": "10.244.0.5", "b": "10.244.0.6", "c": "10.244.0.7"}
WEB_IP, SOLO_IP, EMPTY_IP = "10.96.0.50", "10.96.0.51", "10.96.0.52"


def sh(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return netns.run(ns, list(argv), check=check, timeout=30)


@dataclass
class Cluster:
    instance: Instance
    pods: dict[str, str]
    """pod name -> netns"""
    cache: ServiceCache
    proxy: ServiceProxy
    dns: ClusterDNS
    resolv_conf: Path

    def curl(self, pod: str, url: str, timeout: float = 3) -> subprocess.CompletedProcess[bytes]:
        return sh(self.pods[pod], "curl", "-sS", "-m", str(timeout), url, check=False)

    def in_pod_with_resolv_conf(self, pod: str, command: str
                                ) -> subprocess.CompletedProcess[bytes]:
        """Run `command` in a private mount namespace with the pod's resolv.conf."""
        script = f"mount --bind {self.resolv_conf} /etc/resolv.conf && {command}"
        return sh(self.pods[pod], "unshare", "-m", "--propagation", "private",
                  "sh", "-c", script, check=False)

    def set_objects(self, web_endpoints: list[str]) -> int:
        """Put the test's Services into the cache; returns the cache version."""
        k8s, k8s_eps = kubernetes_service()
        dns_objs = dict(kube_dns_objects("10.96.0.10"))
        web = service("web", "demo", WEB_IP, [port(80, "http", "http")])
        solo = service("solo", "demo", SOLO_IP, [port(80, 8000)])
        empty = service("empty", "demo", EMPTY_IP, [port(80, 8000), port(53, 53, "u", "UDP")])
        slices = [
            endpoint_slice("web", "demo", [endpoint(POD_IPS[p]) for p in web_endpoints],
                           [slice_port(8000, "http")]),
            endpoint_slice("solo", "demo", [endpoint(POD_IPS["a"])], [slice_port(8000)]),
            dns_objs["endpointslices"],
        ]
        self.cache.replace("endpoints", [k8s_eps, dns_objs["endpoints"]])
        self.cache.replace("endpointslices", slices)
        self.cache.replace("services", [k8s, dns_objs["services"], web, solo, empty])
        return self.cache.version


def _make_netns(instance: Instance, pods: dict[str, str], tmp: Path) -> None:
    node = instance.node_netns
    subprocess.run(["ip", "netns", "add", node], check=True)
    sh(node, "ip", "link", "set", "lo", "up")
    for addr in ("172.30.0.1/32", "172.30.0.10/32"):
        sh(node, "ip", "addr", "add", addr, "dev", "lo")
    sh(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for i, (name, ns) in enumerate(pods.items()):
        ip, veth = POD_IPS[name], f"veth{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", veth, "netns", node, "type", "veth",
                        "peer", "name", "eth0", "netns", ns], check=True)
        sh(ns, "ip", "link", "set", "lo", "up")
        sh(ns, "ip", "link", "set", "eth0", "up")
        sh(ns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
        sh(ns, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink")
        sh(node, "ip", "link", "set", veth, "up")
        sh(node, "ip", "addr", "add", "169.254.1.1/32", "dev", veth)
        sh(node, "ip", "route", "add", f"{ip}/32", "dev", veth)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("netns")
    instance = Instance("sn" + uuid.uuid4().hex[:6])
    pods = {name: instance.pod_netns(f"{name}-{instance.name}") for name in POD_IPS}
    servers: list[subprocess.Popen[bytes]] = []
    proxy = dns_server = None
    try:
        _make_netns(instance, pods, tmp)
        for name in ("a", "b"):
            docroot = tmp / name
            docroot.mkdir()
            (docroot / "who").write_text(name)
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", pods[name], sys.executable, "-m", "http.server",
                 "8000", "--bind", "0.0.0.0", "--directory", str(docroot)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        resolv_conf = tmp / "resolv.conf"
        resolv_conf.write_text("nameserver 10.96.0.10\n"
                               "search demo.svc.cluster.local svc.cluster.local cluster.local\n"
                               "options ndots:5\n")
        cache = ServiceCache()
        proxy = ServiceProxy(instance, None, cache=cache)
        dns_server = ClusterDNS(instance, None, cache=cache)
        c = Cluster(instance, pods, cache, proxy, dns_server, resolv_conf)
        version = c.set_objects(["a", "b"])
        proxy.start()
        dns_server.start()
        assert proxy.wait_applied(version, 10)
        for name in ("a", "b"):
            wait_for(lambda name=name: sh(instance.node_netns, "curl", "-s", "-m", "1",  # type: ignore[misc]
                                          f"http://{POD_IPS[name]}:8000/who",
                                          check=False).stdout == name.encode(),
                     20, f"the web server in pod {name}")
        yield c
    finally:
        if dns_server is not None:
            dns_server.stop()
        if proxy is not None:
            proxy.stop()
        for proc in servers:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in [*pods.values(), instance.node_netns]:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_a_cluster_ip_is_load_balanced_across_two_endpoints_via_a_named_port(
        cluster: Cluster) -> None:
    seen = set()
    for _ in range(40):
        proc = cluster.curl("c", f"http://{WEB_IP}/who")
        assert proc.returncode == 0, proc.stderr
        seen.add(proc.stdout.decode())
        if seen == {"a", "b"}:
            break
    assert seen == {"a", "b"}


def test_node_local_processes_reach_cluster_ips_too(cluster: Cluster) -> None:
    proc = sh(cluster.instance.node_netns, "curl", "-sS", "-m", "3", f"http://{SOLO_IP}/who",
              check=False)
    assert proc.stdout == b"a", proc.stderr


def test_a_pod_reaches_itself_through_its_own_service(cluster: Cluster) -> None:
    proc = cluster.curl("a", f"http://{SOLO_IP}/who")
    assert proc.returncode == 0 and proc.stdout == b"a", proc.stderr


def test_a_service_without_endpoints_rejects_at_once(cluster: Cluster) -> None:
    started = time.monotonic()
    proc = cluster.curl("c", f"http://{EMPTY_IP}/who", timeout=5)
    assert proc.returncode == 7, proc.stderr  # curl: couldn't connect (TCP reset)
    assert time.monotonic() - started < 2
    with netns.socket_in(cluster.pods["c"], socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.connect((EMPTY_IP, 53))
        sock.send(b"ping")
        with pytest.raises(ConnectionRefusedError):  # ICMP port unreachable
            sock.recv(100)


def test_an_endpoint_change_is_applied_within_a_second(cluster: Cluster) -> None:
    try:
        started = time.monotonic()
        version = cluster.set_objects(["b"])
        assert cluster.proxy.wait_applied(version, 1.0)
        assert time.monotonic() - started < 1.0
        answers = {cluster.curl("c", f"http://{WEB_IP}/who").stdout for _ in range(8)}
        assert answers == {b"b"}
    finally:
        assert cluster.proxy.wait_applied(cluster.set_objects(["a", "b"]), 5)


def test_the_table_lives_only_in_the_node_namespace(cluster: Cluster) -> None:
    inside = sh(cluster.instance.node_netns, "nft", "list", "tables").stdout.decode()
    assert f"table ip {TABLE}" in inside
    host_routes = subprocess.run(["ip", "route", "show", "10.96.0.0/16"], capture_output=True,
                                 check=True).stdout
    assert host_routes == b""


def test_dns_answers_a_pod_through_the_kube_dns_service_ip(cluster: Cluster) -> None:
    query = dns.message.make_query("web.demo.svc.cluster.local", "A")
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with netns.socket_in(cluster.pods["c"], socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:  # dnspython wants given TCP sockets connected
                sock.settimeout(3)
                sock.connect(("10.96.0.10", 53))
            sock.setblocking(False)  # dnspython waits with select on the sockets it is given
            if kind == socket.SOCK_DGRAM:
                reply = dns.query.udp(query, "10.96.0.10", timeout=3, sock=sock)
            else:
                reply = dns.query.tcp(query, "10.96.0.10", timeout=3, sock=sock)
        assert reply.rcode() == dns.rcode.NOERROR
        assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [WEB_IP]


def test_getent_resolves_short_names_through_the_search_path(cluster: Cluster) -> None:
    proc = cluster.in_pod_with_resolv_conf("c", "getent hosts web kubernetes.default")
    assert proc.returncode == 0, proc.stderr
    lines = sorted(proc.stdout.decode().split("\n"))
    assert any(line.startswith(f"{WEB_IP} ") for line in lines)
    assert any(line.startswith("10.96.0.1 ") for line in lines)
    missing = cluster.in_pod_with_resolv_conf("c", "getent hosts nothing-here")
    assert missing.returncode == 2  # not found


def test_a_pod_curls_a_service_by_its_dns_name(cluster: Cluster) -> None:
    proc = cluster.in_pod_with_resolv_conf("a", "curl -sS -m 3 http://solo.demo/who")
    assert proc.stdout == b"a", proc.stderr


def test_stop_removes_the_table_and_the_service_route() -> None:
    instance = Instance("sn" + uuid.uuid4().hex[:6])
    node = instance.node_netns
    subprocess.run(["ip", "netns", "add", node], check=True)
    try:
        sh(node, "ip", "link", "set", "lo", "up")
        sh(node, "ip", "addr", "add", "172.30.0.1/32", "dev", "lo")
        cache = ServiceCache()
        proxy = ServiceProxy(instance, None, cache=cache)
        for kind in ("services", "endpoints", "endpointslices"):
            cache.replace(kind, [])
        proxy.start()
        assert proxy.wait_applied(cache.version, 10)
        assert TABLE in sh(node, "nft", "list", "tables").stdout.decode()
        assert sh(node, "ip", "route", "show", "10.96.0.0/16").stdout != b""
        proxy.stop()
        assert TABLE not in sh(node, "nft", "list", "tables").stdout.decode()
        assert sh(node, "ip", "route", "show", "10.96.0.0/16").stdout == b""
    finally:
        subprocess.run(["ip", "netns", "del", node], check=False)


def test_a_missing_node_namespace_is_a_one_line_error() -> None:
    proxy = ServiceProxy(Instance("sn" + uuid.uuid4().hex[:6]), None, cache=ServiceCache())
    with pytest.raises(ServiceProxyError, match="tp sandbox up"):
        proxy.start()
    proxy.stop()  # stopping what never started is harmless


def test_dns_without_its_namespace_fails_to_start_with_a_hint() -> None:
    server = ClusterDNS(Instance("sn" + uuid.uuid4().hex[:6]), None, cache=ServiceCache())
    with pytest.raises(DNSBindError, match="is the node netns up"):
        server.start()
    server.stop()
