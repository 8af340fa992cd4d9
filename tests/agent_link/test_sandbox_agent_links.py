"""Matched requests of personal intercepts travel on a direct daemon <-> agent link (root).

Laptop 1 is developer alice (local code answers "blue"), laptop 2 developer bob ("red");
each has a personal intercept (`--http-match blog-demo-id=<who>`) on the demo's
dataprocessingservice, whose app answers "green". Each daemon opens a port-forward to
the agent pod's link port and shows its intercept's link key; requests are sent from
inside the cluster. The daemon's status counts what came over its link and what came
through the manager's Relay. The tests run in order and share the intercepts.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_link_testing import SVC, TP, cluster_requests, link_status, probe_link
from durability_testing import MANAGER_NS, local_app, ready_manager
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def developers(sandbox: Any, demo: str) -> Iterator[tuple[Laptop, Laptop]]:
    laps = (Laptop(sandbox, 1), Laptop(sandbox, 2))
    apps = [local_app(laps[0], "blue"), local_app(laps[1], "red")]
    try:
        for lap, who in zip(laps, ("alice", "bob"), strict=True):
            connected = lap.run(f"{TP} connect", timeout=180)
            assert connected.returncode == 0, connected.stderr
            done = lap.run(f"{TP} intercept {SVC} -n {demo} -p 3000 --name {who} "
                           f"--http-match blog-demo-id={who} --mount false", timeout=180)
            assert done.returncode == 0, done.stderr
        yield laps
    finally:
        for lap in laps:
            lap.run(f"{TP} quit", timeout=60)
        for proc in apps:
            proc.terminate()
            proc.wait(timeout=10)


def _link_open(lap: Laptop, name: str, not_id: str = "") -> dict[str, Any] | None:
    got = link_status(lap).get(name)
    return (got if got and got["link_state"].startswith("open to ") and got["id"] != not_id
            else None)


def test_matched_requests_go_over_the_owners_link_and_never_through_the_managers_relay(
        developers: tuple[Laptop, Laptop], demo: str, core: Any) -> None:
    alice, bob = developers
    before = {who: wait_for(lambda lap=lap, who=who: _link_open(lap, who), 60,
                            f"{who}'s link open")
              for lap, who in ((alice, "alice"), (bob, "bob"))}
    assert before["alice"]["pods"] and before["alice"]["pods"] == before["bob"]["pods"]
    got = cluster_requests(core, demo, 120, "alice", "bob", "-")
    assert got["colors"] == {"alice=blue": 40, "bob=red": 40, "-=green": 40}, got
    after_alice: dict[str, Any] = {}
    for lap, who in ((alice, "alice"), (bob, "bob")):
        after = link_status(lap)[who]
        after_alice = after_alice or after
        # each developer's requests came over that developer's own link, all of them
        assert after["link_connections"] - before[who]["link_connections"] == 40, after
        assert after["relay_connections"] == before[who]["relay_connections"], after
    # a keep-alive caller's matched requests share one connection on the link
    kept = cluster_requests(core, demo, 30, "alice", fresh=False)
    assert kept["colors"] == {"alice=blue": 30}, kept
    last = link_status(alice)["alice"]
    assert last["link_connections"] == after_alice["link_connections"] + 1, last
    assert last["relay_connections"] == after_alice["relay_connections"], last


def test_a_link_with_a_wrong_or_missing_key_is_refused_and_closed(
        developers: tuple[Laptop, Laptop], demo: str, core: Any) -> None:
    alice, bob = developers
    pod = link_status(alice)["alice"]["pods"][0]
    ids = {"alice": link_status(alice)["alice"]["id"], "bob": link_status(bob)["bob"]["id"]}
    for who, pairs in (("no key", []), ("a wrong key", [(ids["alice"], "x" * 32)]),
                       ("bob's id with an invented key", [(ids["bob"], "guess")])):
        # bob may port-forward to the pod (namespace edit rights): a key is what he lacks
        got = probe_link(bob, pod, pairs=pairs)
        assert got["closed"], who
        assert all(a["kind"] == "link_hello" and not a["ids"] for a in got["answers"]), (
            who, got)
    garbage = probe_link(bob, pod, mode="garbage")
    assert garbage["closed"] and garbage["answers"] == []
    # the links of the owners still carry their requests only
    got = cluster_requests(core, demo, 20, "alice", "bob")
    assert got["colors"] == {"alice=blue": 10, "bob=red": 10}, got


def _kill_links(sandbox: Any, core: Any, ns: str, port: int) -> None:
    """Reset the links' TCP connections inside the agent pod (what a dying port-forward
    or a network fault does to them)."""
    pod = core.list_namespaced_pod(ns, label_selector=f"app={SVC}").items[0]
    netns = sandbox.instance.pod_netns(pod.metadata.uid)
    done = subprocess.run(["ip", "netns", "exec", netns, "ss", "-K", "state", "established",
                           f"( sport = :{port} or dport = :{port} )"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_killing_the_link_mid_traffic_falls_back_to_the_managers_relay_and_reopens(
        sandbox: Any, developers: tuple[Laptop, Laptop], demo: str, core: Any) -> None:
    alice, _ = developers
    start = wait_for(lambda: _link_open(alice, "alice"), 60, "alice's link open")
    port = int(start["pods"][0][2])
    result: dict[str, Any] = {}
    # its own client: `kubernetes.stream` patches the ApiClient it runs on while it runs
    from kubernetes import client

    own = client.CoreV1Api(client.ApiClient(core.api_client.configuration))
    load = threading.Thread(target=lambda: result.update(
        cluster_requests(own, demo, 600, "alice")))
    load.start()
    try:
        wait_for(lambda: link_status(alice)["alice"]["link_connections"]
                 >= start["link_connections"] + 30, 60, "requests flowing over the link")
        _kill_links(sandbox, core, demo, port)
        killed_at = time.monotonic()
    finally:
        load.join(timeout=300)
    # at most the request in flight when the link died fails (a 502 naming the reason)
    assert result["colors"].get("alice=blue", 0) >= 599, result
    mid = link_status(alice)["alice"]
    assert mid["relay_connections"] > start["relay_connections"], mid  # the fallback carried some
    wait_for(lambda: _link_open(alice, "alice"), 60, "alice's link open again")
    assert time.monotonic() - killed_at < 120
    reopened = link_status(alice)["alice"]
    got = cluster_requests(core, demo, 40, "alice")
    assert got["colors"] == {"alice=blue": 40}, got
    end = link_status(alice)["alice"]
    assert end["link_connections"] == reopened["link_connections"] + 40, end
    assert end["relay_connections"] == reopened["relay_connections"], end


def test_after_a_manager_restart_the_links_carry_the_requests_again(
        developers: tuple[Laptop, Laptop], demo: str, core: Any) -> None:
    alice, bob = developers
    laps = ((alice, "alice"), (bob, "bob"))
    ids = {who: link_status(lap)[who]["id"] for lap, who in laps}
    old = ready_manager(core)
    assert old, "no ready traffic-manager pod"
    core.delete_namespaced_pod(old, MANAGER_NS)
    wait_for(lambda: ready_manager(core, other_than=old), 90, "a new traffic-manager pod")
    # until each daemon has re-created its intercept, the agent may still route by the old
    # ones (it keeps them while its manager is away): wait for the new ids, then the links
    # that serve them (a link says "open" only once the agent accepted the new key)
    before = {who: wait_for(lambda lap=lap, who=who: _link_open(lap, who, not_id=ids[who]),
                            90, f"{who}'s intercept re-created and its link open again")
              for lap, who in laps}
    got = cluster_requests(core, demo, 60, "alice", "bob")
    assert got["colors"] == {"alice=blue": 30, "bob=red": 30}, got
    for lap, who in laps:
        after = link_status(lap)[who]
        assert after["link_connections"] - before[who]["link_connections"] == 30, after
        assert after["relay_connections"] == before[who]["relay_connections"], after
