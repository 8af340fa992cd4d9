"""kube-proxy's model and nft rule generation, fed with API objects directly."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from network_objects import (
    endpoint,
    endpoint_slice,
    endpoints,
    kubernetes_service,
    port,
    service,
    slice_port,
)
from tp_sandbox.node.dns import kube_dns_objects
from tp_sandbox.node.proxy import Backend, ServiceCache, build_services, render_table


def test_a_named_target_port_is_resolved_from_the_slice_ports() -> None:
    svc = service("dps", "demo", "10.96.5.5", [port(3000, "http", "http")])
    sl = endpoint_slice("dps", "demo", [endpoint("10.244.0.7")], [slice_port(3001, "http")])
    (info,) = build_services([svc], [sl], [])
    assert info.ports[0].backends == [Backend("10.244.0.7", 3001)]


def test_only_ready_endpoints_become_backends() -> None:
    svc = service("a", "ns", "10.96.1.1", [port(80, 8080)])
    sl = endpoint_slice("a", "ns", [endpoint("10.244.0.2"), endpoint("10.244.0.3", ready=False),
                                    endpoint("10.244.0.4", ready=None)], [slice_port(8080)])
    (info,) = build_services([svc], [sl], [])
    assert [b.ip for b in info.ports[0].backends] == ["10.244.0.2", "10.244.0.4"]


def test_endpoints_are_used_when_a_service_has_no_slices() -> None:
    svc, eps = kubernetes_service()
    (info,) = build_services([svc], [], [eps])
    assert info.ports[0].backends == [Backend("172.30.0.1", 6443)]


def test_slices_win_over_endpoints_and_duplicates_collapse() -> None:
    svc = service("a", "ns", "10.96.1.1", [port(80, 8080)])
    sl1 = endpoint_slice("a", "ns", [endpoint("10.244.0.2")], [slice_port(8080)], "one")
    sl2 = endpoint_slice("a", "ns", [endpoint("10.244.0.2")], [slice_port(8080)], "two")
    eps = endpoints("a", "ns", ["10.244.0.9"], [{"port": 8080, "protocol": "TCP"}])
    (info,) = build_services([svc], [sl1, sl2], [eps])
    assert info.ports[0].backends == [Backend("10.244.0.2", 8080)]


def test_two_endpoints_are_load_balanced_with_numgen() -> None:
    svc = service("a", "ns", "10.96.1.1", [port(80, 8080)])
    sl = endpoint_slice("a", "ns", [endpoint("10.244.0.2"), endpoint("10.244.0.3")],
                        [slice_port(8080)])
    script = render_table(build_services([svc], [sl], []))
    assert "ip daddr 10.96.1.1 tcp dport 80 goto svc-1" in script
    assert "numgen random mod 2 vmap { 0 : goto ep-1-0, 1 : goto ep-1-1 }" in script
    assert "dnat to 10.244.0.2:8080" in script and "dnat to 10.244.0.3:8080" in script
    assert "ip saddr 10.244.0.2 meta mark set meta mark | 0x4000" in script


def test_a_service_without_ready_endpoints_is_in_the_reject_set() -> None:
    svc = service("a", "ns", "10.96.1.1", [port(80, 8080), port(53, 53, "dns", "UDP")])
    script = render_table(build_services([svc], [], []))
    assert "elements = { 10.96.1.1 . tcp . 80, 10.96.1.1 . udp . 53 }" in script
    assert "goto svc-" not in script


def test_headless_and_external_name_services_get_no_rules() -> None:
    headless = service("h", "ns", "None", [port(80)])
    external = service("e", "ns", None, [port(80)], type="ExternalName",
                       externalName="example.com")
    sl = endpoint_slice("h", "ns", [endpoint("10.244.0.2")], [slice_port(80)])
    script = render_table(build_services([headless, external], [sl], []))
    assert "10.244.0.2" not in script and "elements" not in script


def test_kube_dns_objects_give_udp_and_tcp_rules_to_the_dns_address() -> None:
    objs = dict(kube_dns_objects("10.96.0.10"))
    script = render_table(build_services([objs["services"]], [objs["endpointslices"]],
                                         [objs["endpoints"]]))
    assert "ip daddr 10.96.0.10 udp dport 53 goto svc-1" in script
    assert "ip daddr 10.96.0.10 tcp dport 53 goto svc-2" in script
    assert script.count("dnat to 172.30.0.10:53") == 2


def test_the_cache_is_synced_only_after_every_kind_was_listed() -> None:
    cache = ServiceCache()
    seen: list[int] = []
    cache.add_listener(lambda: seen.append(cache.version))
    cache.replace("services", [])
    cache.replace("endpoints", [])
    assert not cache.synced.is_set()
    cache.replace("endpointslices", [])
    assert cache.synced.is_set()
    svc = service("a", "ns", "10.96.1.1", [port(80)])
    cache.apply("services", "ADDED", svc)
    cache.apply("services", "BOOKMARK", svc)  # no change, no notification
    assert seen == [1, 2, 3, 4]
    cache.apply("services", "DELETED", svc)
    assert cache.snapshot()[1] == []


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs the nft tool")
def test_the_generated_table_passes_nft_check() -> None:
    svc, eps = kubernetes_service()
    lb = service("a", "ns", "10.96.1.1", [port(80, 8080)])
    sl = endpoint_slice("a", "ns", [endpoint("10.244.0.2"), endpoint("10.244.0.3")],
                        [slice_port(8080)])
    none = service("b", "ns", "10.96.1.2", [port(80)])
    script = render_table(build_services([svc, lb, none], [sl], [eps]))
    # --check parses and validates without touching the kernel's rule set
    proc = subprocess.run(["nft", "--check", "-f", "-"], input=script.encode(),
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode() + script


def test_a_load_balancer_address_gets_the_cluster_ips_rules_and_only_for_that_type() -> None:
    lb = service("web", "demo", "10.96.7.7", [port(80, 8080)])
    lb["spec"]["type"] = "LoadBalancer"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "172.29.0.1", "ipMode": "VIP"}]}}
    empty = {**lb, "metadata": {"name": "empty", "namespace": "demo"},
             "spec": {**lb["spec"], "clusterIP": "10.96.7.9"},
             "status": {"loadBalancer": {"ingress": [{"ip": "172.29.0.2"}]}}}
    was_lb = {**lb, "metadata": {"name": "was", "namespace": "demo"},
              "spec": {**lb["spec"], "type": "ClusterIP", "clusterIP": "10.96.7.8"},
              "status": {"loadBalancer": {"ingress": [{"ip": "172.29.0.3"}]}}}
    slices = [endpoint_slice(n, "demo", [endpoint("10.244.0.9")], [slice_port(8080)])
              for n in ("web", "was")]
    infos = build_services([lb, empty, was_lb], slices, [])
    assert [i.load_balancer_ips for i in infos] == [["172.29.0.2"], [], ["172.29.0.1"]]
    table = render_table(infos)
    assert "ip daddr 10.96.7.7 tcp dport 80 goto svc-" in table
    assert "ip daddr 172.29.0.1 tcp dport 80 goto svc-" in table
    assert "172.29.0.2 . tcp . 80" in table   # no endpoints: rejected like its ClusterIP
    assert "172.29.0.3" not in table          # no longer a LoadBalancer: no rules
