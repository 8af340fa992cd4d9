"""What the root daemon accepts from a caller: private cluster ranges, ports, sane names."""

from __future__ import annotations

import pytest
from tp_daemon.root.network import user_nft_script
from tp_daemon.root.requests import RequestError, parse_route


def _parse(**fields: object) -> object:
    message = {"op": "route", "ranges": ["10.96.0.0/16", "10.244.0.0/24"], "proxy_port": 4000,
               "dns_port": 4001, "context": "sandbox"}
    message.update(fields)
    return parse_route(message, max_ranges=64, min_prefix=8)


def test_private_cluster_ranges_and_ports_are_accepted() -> None:
    request = _parse()
    assert [str(n) for n in request.ranges] == ["10.96.0.0/16", "10.244.0.0/24"]
    assert (request.proxy_port, request.dns_port, request.context) == (4000, 4001, "sandbox")


@pytest.mark.parametrize(("fields", "words"), [
    ({"ranges": ["0.0.0.0/0"]}, "too wide"),
    ({"ranges": ["8.8.8.0/24"]}, "not a private range"),
    ({"ranges": ["127.0.0.0/8"]}, "not a private range"),
    ({"ranges": ["169.254.0.0/16"]}, "not a private range"),
    ({"ranges": ["10.96.0.1/16"]}, "not a valid CIDR"),
    ({"ranges": ["fd00::/64"]}, "not IPv4"),
    ({"ranges": []}, "non-empty list"),
    ({"ranges": "10.96.0.0/16"}, "non-empty list"),
    ({"ranges": [f"10.{i}.0.0/16" for i in range(65)]}, "at most 64"),
    ({"proxy_port": 0}, "proxy_port"),
    ({"dns_port": "53"}, "dns_port"),
    ({"context": "bad name; rm -rf /"}, "context"),
])
def test_a_bad_request_is_refused_in_one_line_naming_the_problem(
        fields: dict[str, object], words: str) -> None:
    with pytest.raises(RequestError) as caught:
        _parse(**fields)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_every_rule_of_a_users_table_matches_only_that_users_sockets() -> None:
    script = user_nft_script("tp-root-u1001", 1001, _parse().ranges,  # type: ignore[attr-defined]
                             proxy_port=4000, nameservers=["127.0.0.53"], dns_port=5353,
                             mark=0x7470)
    chain = script.split("chain output {", 1)[1]
    rules = [line.strip() for line in chain.splitlines() if "redirect" in line]
    assert chain.index("meta skuid != 1001 return") < chain.index("redirect")
    assert rules == [
        "ip daddr { 127.0.0.53 } udp dport 53 redirect to :5353",
        "ip daddr { 127.0.0.53 } tcp dport 53 redirect to :5353",
        "ip daddr { 10.96.0.0/16, 10.244.0.0/24 } meta l4proto tcp redirect to :4000"]
