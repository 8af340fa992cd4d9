"""Cluster-info parsing: the service CIDR from the API server's refusal, resolv.conf, pod IPs."""

from __future__ import annotations

from tp_cluster.manager.clusterinfo import (
    cluster_domain_from_search,
    covering_cidrs,
    covering_service_cidr,
    parse_resolv_conf,
    parse_service_cidr,
)

# kube-apiserver 1.29+ (single stack), verbatim
REAL_MESSAGE = (
    'Service "tp-service-cidr-probe" is invalid: spec.clusterIPs: Invalid value: '
    '[]string{"1.1.1.1"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in '
    "the valid range. The range of valid IPs is 10.96.0.0/12"
)
STATUS_BODY = (
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"'
    + REAL_MESSAGE.replace('"', '\\"')
    + '","reason":"Invalid","code":422}'
)


def test_the_service_cidr_is_read_from_the_real_refusal_message() -> None:
    assert parse_service_cidr(REAL_MESSAGE) == "10.96.0.0/12"


def test_the_service_cidr_is_read_from_a_whole_status_body() -> None:
    assert parse_service_cidr(STATUS_BODY) == "10.96.0.0/12"


def test_a_dual_stack_message_gives_the_first_range() -> None:
    message = "The range of valid IPs are 10.96.0.0/16,fd00:10:96::/112"
    assert parse_service_cidr(message) == "10.96.0.0/16"


def test_a_message_without_a_range_gives_nothing() -> None:
    assert parse_service_cidr('services "x" is forbidden: User cannot create') is None


def test_resolv_conf_gives_the_cluster_domain_and_the_dns_server() -> None:
    conf = parse_resolv_conf(
        "# generated\nsearch ambassador.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")
    assert conf.nameservers == ["10.96.0.10"]
    assert cluster_domain_from_search(conf.search) == "cluster.local"
    assert cluster_domain_from_search(["corp.example"]) is None


def test_pod_ips_are_covered_by_merged_ranges() -> None:
    assert covering_cidrs(["10.244.0.5", "10.244.0.9", "10.244.1.3", "fd00::5", "junk"]) == [
        "10.244.0.0/23", "fd00::/64"]


def test_cluster_ips_are_covered_by_one_range_of_at_least_16_bits() -> None:
    assert covering_service_cidr(["10.96.0.1", "10.96.200.4"]) == "10.96.0.0/16"
    assert covering_service_cidr(["10.96.0.1", "10.97.0.1"]) == "10.96.0.0/15"
    assert covering_service_cidr([]) is None
