"""Routing with root, in a private network namespace: link, routes, nft, DNS, cleanup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[1] / "netns_routing_helper.py"

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.timeout(60)]


@pytest.fixture
def netns() -> Iterator[str]:
    """A private namespace `h8-rt-<pid>` whose resolv.conf names 127.0.0.53."""
    name = f"h8-rt-{os.getpid()}"
    etc = Path("/etc/netns") / name
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(etc, ignore_errors=True)


def _run(netns: str, mode: str) -> dict[str, object]:
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(HELPER), mode],
                          capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_cluster_tcp_and_dns_are_redirected_and_quit_leaves_nothing(netns: str) -> None:
    out = _run(netns, "normal")
    during = out["during"]
    assert isinstance(during, dict)
    assert "tp0" in during["links"]
    assert "10.96.0.0/16 dev tp0" in during["routes"]
    assert "tp-daemon" in during["nft"]
    assert out["echo_intact"] is True
    assert out["dialed"] == [["10.96.0.5", 80]]
    assert out["cluster_answer"] == ["10.96.0.1"]
    assert out["upstream_answer"] == ["192.0.2.1"]
    assert out["upstream_saw"] == ["example.test."]
    assert out["getaddrinfo"] == ["10.96.0.1"]
    after = out["after"]
    assert isinstance(after, dict)
    assert "tp0" not in after["links"]
    assert "10.96" not in after["routes"] and "10.244" not in after["routes"]
    assert "tp-daemon" not in after["nft"]


def test_a_cluster_range_overlapping_a_route_is_refused_with_nothing_left(netns: str) -> None:
    out = _run(netns, "overlap")
    assert out["error"] == (
        "cluster range 10.96.0.0/16 overlaps the route 10.96.0.0/24 dev lo on this "
        "workstation; remove that route (or disconnect what added it) and connect again")
    after = out["after"]
    assert isinstance(after, dict)
    assert "tp0" not in after["links"] and "tp-daemon" not in after["nft"]
