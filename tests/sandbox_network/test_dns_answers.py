"""Cluster DNS answers, computed from Services and endpoints fed in directly."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from network_objects import endpoint, endpoint_slice, kubernetes_service, port, service, slice_port
from tp_sandbox.node.dns import Zone, wire_response
from tp_sandbox.node.proxy import build_services


@pytest.fixture
def zone() -> Zone:
    k8s, k8s_eps = kubernetes_service()
    dps = service("dataprocessingservice", "demo", "10.96.3.3", [port(3000, "http", "http")])
    dps_slice = endpoint_slice("dataprocessingservice", "demo", [endpoint("10.244.0.7")],
                               [slice_port(3000, "http")])
    db = service("db", "demo", "None", [port(5432, 5432, "pg")])
    db_slice = endpoint_slice("db", "demo", [endpoint("10.244.0.8", hostname="db-0"),
                                             endpoint("10.244.0.9"),
                                             endpoint("10.244.0.10", ready=False)],
                              [slice_port(5432, "pg")])
    ext = service("search", "demo", None, [], type="ExternalName", externalName="example.org")
    services = build_services([k8s, dps, db, ext], [dps_slice, db_slice], [k8s_eps])
    return Zone.build(services, "cluster.local", 5)


def ask(zone: Zone, name: str, rdtype: str = "A") -> dns.message.Message:
    return zone.answer(dns.message.make_query(name, rdtype))


def values(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def test_a_service_name_answers_its_cluster_ip(zone: Zone) -> None:
    msg = ask(zone, "dataprocessingservice.demo.svc.cluster.local")
    assert msg.rcode() == dns.rcode.NOERROR and values(msg) == ["10.96.3.3"]
    assert msg.flags & dns.flags.AA and msg.answer[0].ttl == 5


def test_names_are_case_insensitive(zone: Zone) -> None:
    assert values(ask(zone, "Kubernetes.DEFAULT.svc.Cluster.Local.")) == ["10.96.0.1"]


def test_a_headless_service_answers_its_ready_endpoints(zone: Zone) -> None:
    assert values(ask(zone, "db.demo.svc.cluster.local")) == ["10.244.0.8", "10.244.0.9"]


def test_an_endpoint_hostname_has_its_own_record(zone: Zone) -> None:
    assert values(ask(zone, "db-0.db.demo.svc.cluster.local")) == ["10.244.0.8"]


def test_a_pod_name_with_a_dashed_ip_answers_that_ip(zone: Zone) -> None:
    assert values(ask(zone, "10-244-0-42.demo.pod.cluster.local")) == ["10.244.0.42"]


def test_a_named_port_has_an_srv_record_with_the_address_added(zone: Zone) -> None:
    msg = ask(zone, "_http._tcp.dataprocessingservice.demo.svc.cluster.local", "SRV")
    assert values(msg) == ["0 100 3000 dataprocessingservice.demo.svc.cluster.local."]
    assert [rd.to_text() for rrset in msg.additional for rd in rrset] == ["10.96.3.3"]


def test_a_headless_srv_lists_each_ready_endpoint(zone: Zone) -> None:
    msg = ask(zone, "_pg._tcp.db.demo.svc.cluster.local", "SRV")
    assert values(msg) == ["0 50 5432 10-244-0-9.db.demo.svc.cluster.local.",
                           "0 50 5432 db-0.db.demo.svc.cluster.local."]


def test_an_external_name_service_is_a_cname(zone: Zone) -> None:
    msg = ask(zone, "search.demo.svc.cluster.local")
    assert values(msg) == ["example.org."]
    assert msg.answer[0].rdtype == dns.rdatatype.CNAME


def test_an_unknown_name_in_the_domain_is_nxdomain_with_the_soa(zone: Zone) -> None:
    msg = ask(zone, "nothing.demo.svc.cluster.local")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.authority[0].rdtype == dns.rdatatype.SOA


def test_aaaa_for_a_known_name_is_noerror_and_empty(zone: Zone) -> None:
    msg = ask(zone, "kubernetes.default.svc.cluster.local", "AAAA")
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []
    assert msg.authority[0].rdtype == dns.rdatatype.SOA


def test_a_namespace_with_services_exists_without_records(zone: Zone) -> None:
    assert ask(zone, "demo.svc.cluster.local").rcode() == dns.rcode.NOERROR


def test_names_outside_the_cluster_domain_are_refused(zone: Zone) -> None:
    msg = ask(zone, "pypi.org")
    assert msg.rcode() == dns.rcode.REFUSED and not msg.flags & dns.flags.RA


def test_an_answer_too_big_for_udp_is_truncated() -> None:
    many = [endpoint(f"10.244.1.{i}") for i in range(1, 60)]
    svc = service("big", "ns", "None", [port(80)])
    zone = Zone.build(build_services([svc], [endpoint_slice("big", "ns", many,
                                                            [slice_port(80)])], []),
                      "cluster.local", 5)
    query = dns.message.make_query("big.ns.svc.cluster.local", "A")
    reply = dns.message.from_wire(wire_response(zone, query.to_wire(), 512) or b"")
    assert reply.flags & dns.flags.TC and reply.answer == []
    full = dns.message.from_wire(wire_response(zone, query.to_wire(), None) or b"")
    assert len(values(full)) == 59


def test_garbage_gets_no_answer(zone: Zone) -> None:
    assert wire_response(zone, b"\x00\x01garbage", 512) is None


def test_reverse_lookups_are_refused_too(zone: Zone) -> None:
    assert ask(zone, "1.0.96.10.in-addr.arpa", "PTR").rcode() == dns.rcode.REFUSED
