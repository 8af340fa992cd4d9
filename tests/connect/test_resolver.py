"""The daemon's resolver: cluster names from the manager's answers, others upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dns_testing import Upstream as _Upstream
from dns_testing import lookup as _lookup
from tp_daemon.dns import Resolver


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[_Upstream, int]]:
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        _Upstream, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


@pytest.fixture
async def resolver(upstream: tuple[_Upstream, int]) -> AsyncIterator[Resolver]:
    r = Resolver(_lookup, [f"127.0.0.1:{upstream[1]}"], timeout=2, cache_ttl=5, mark=0)
    await r.start()
    yield r
    await r.close()


@pytest.mark.timeout(20)
async def test_a_cluster_name_is_answered_from_the_manager(resolver: Resolver,
                                                           upstream: tuple[_Upstream, int]
                                                           ) -> None:
    query = dns.message.make_query("kubernetes.default.", "A")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=resolver.port, timeout=5)
    assert [r.to_text() for r in reply.answer[0]] == ["10.96.0.1"]
    assert upstream[0].names == []


@pytest.mark.timeout(20)
async def test_an_unknown_cluster_name_is_nxdomain_without_asking_upstream(
        resolver: Resolver, upstream: tuple[_Upstream, int]) -> None:
    query = dns.message.make_query("nope.default.svc.cluster.local.", "A")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=resolver.port, timeout=5)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert upstream[0].names == []


@pytest.mark.timeout(20)
async def test_other_names_go_to_the_upstream_resolver(resolver: Resolver,
                                                       upstream: tuple[_Upstream, int]
                                                       ) -> None:
    query = dns.message.make_query("example.test.", "A")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=resolver.port, timeout=5)
    assert [r.to_text() for r in reply.answer[0]] == ["192.0.2.1"]
    assert upstream[0].names == ["example.test."]


@pytest.mark.timeout(20)
async def test_queries_over_tcp_are_answered_too(resolver: Resolver) -> None:
    query = dns.message.make_query("kubernetes.default.", "A")
    reply = await dns.asyncquery.tcp(query, "127.0.0.1", port=resolver.port, timeout=5)
    assert reply.answer[0].rdtype == dns.rdatatype.A


@pytest.mark.timeout(20)
async def test_an_unreachable_upstream_gives_servfail_not_a_hang() -> None:
    r = Resolver(_lookup, ["127.0.0.1:9"], timeout=0.5, cache_ttl=5, mark=0)
    await r.start()
    try:
        query = dns.message.make_query("example.test.", "A")
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=r.port, timeout=5)
        assert reply.rcode() == dns.rcode.SERVFAIL
    finally:
        await r.close()
