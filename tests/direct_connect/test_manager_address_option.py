"""`--manager-address` and `--manager-service-type`: what each value means, and one-line
errors for values that mean nothing (checked before anything is installed)."""

from __future__ import annotations

import pytest
from tp_daemon import direct
from tp_daemon.errors import ConfigError


@pytest.mark.parametrize(("given", "mode", "address"), [
    ("", "auto", ""), ("auto", "auto", ""), ("direct", "direct", ""),
    ("port-forward", "port-forward", ""),
    ("manager.example.com:8443", "direct", "manager.example.com:8443"),
    ("172.29.0.1:8443", "direct", "172.29.0.1:8443"),
    ("[fd00::1]:8443", "direct", "[fd00::1]:8443"),
])
def test_each_manager_address_names_a_mode_and_maybe_an_address(
        given: str, mode: str, address: str) -> None:
    assert direct.parse(given) == direct.Choice(mode, address)


@pytest.mark.parametrize("given", ["lb", "host:0", "host:70000", "tcp://host:1", "direkt"])
def test_a_meaningless_manager_address_is_refused_in_one_line(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        direct.parse(given)
    message = str(caught.value)
    assert "\n" not in message and "auto, direct, port-forward or HOST:PORT" in message


def test_only_the_two_service_types_install() -> None:
    assert direct.service_type("LoadBalancer") == "LoadBalancer"
    with pytest.raises(ConfigError, match="ClusterIP, LoadBalancer"):
        direct.service_type("NodePort")
