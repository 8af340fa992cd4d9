"""Intercepts survive a traffic-manager restart (root, two laptops).

Laptop 1 is developer alice (local code answers "blue"), laptop 2 developer bob ("red");
each has a personal intercept (`--http-match blog-demo-id=<who>`) on the demo's
dataprocessingservice, whose app answers "green". The manager pod is deleted through the
official client five times in a row; after each, within 10 s of the new manager pod
being Ready, both intercepts route again and `tp status` says what was restored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from durability_testing import (
    MANAGER_NS,
    SVC,
    cluster_colors,
    local_app,
    ready_manager,
    status_json,
    tp,
)
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]

RESTARTS = 5
WITHIN = 10.0
"""Seconds after the new manager is Ready by which every intercept routes again."""


@pytest.fixture(scope="module")
def developers(sandbox: Any, demo: str) -> Iterator[tuple[Laptop, Laptop]]:
    laps = (Laptop(sandbox, 1), Laptop(sandbox, 2))
    apps = [local_app(laps[0], "blue"), local_app(laps[1], "red")]
    try:
        for lap in laps:
            connected = tp(lap, "connect", timeout=180)
            assert connected.returncode == 0, connected.stderr
        yield laps
    finally:
        for lap in laps:
            tp(lap, "quit", timeout=60)
        for proc in apps:
            proc.terminate()
            proc.wait(timeout=10)


def _both_route(core: Any, ns: str) -> bool:
    return cluster_colors(core, ns, "alice", "bob", "-") == {
        "alice": "blue", "bob": "red", "-": "green"}


def test_both_personal_intercepts_route_again_after_each_of_five_manager_restarts(
        developers: tuple[Laptop, Laptop], demo: str, core: Any) -> None:
    alice, bob = developers
    for lap, who in ((alice, "alice"), (bob, "bob")):
        done = tp(lap, f"intercept {SVC} -n {demo} -p 3000 --name {who} "
                       f"--http-match blog-demo-id={who}")
        assert done.returncode == 0, done.stderr
    wait_for(lambda: _both_route(core, demo), 30, "both intercepts routing")
    recoveries = []
    for attempt in range(RESTARTS):
        old = ready_manager(core)
        assert old, "no ready traffic-manager pod"
        core.delete_namespaced_pod(old, MANAGER_NS)
        new = wait_for(lambda old=old: ready_manager(core, other_than=old), 60,
                       f"a new traffic-manager pod after deleting {old} (restart {attempt})",
                       interval=0.05)
        ready_at = time.monotonic()
        wait_for(lambda: _both_route(core, demo), WITHIN,
                 f"both intercepts routing again after restart {attempt} (new pod {new})",
                 interval=0.2)
        recoveries.append(time.monotonic() - ready_at)
        for lap, who in ((alice, "alice"), (bob, "bob")):
            # restored and reachable in one answer (a status probe that times out on a
            # loaded machine says "unreachable" until the next keep-alive answers)
            status = wait_for(
                lambda lap=lap: (s := status_json(lap))["reconnected"] and
                "restored" in s["reconnected"] and s["unreachable_since"] is None and s,
                WITHIN, f"tp status on {who}'s laptop reporting the restoration")
            assert "1 intercept restored (" + who + ")" in status["reconnected"], status
            assert [ic["name"] for ic in status["intercepts"]] == [who], status
    print(f"\nrecovered {RESTARTS} manager restarts in " +
          ", ".join(f"{s:.1f}s" for s in recoveries))
    text = tp(alice, "status").stdout
    assert "Cluster: connected" in text and "1 intercept restored (alice)" in text, text
    for lap, who in ((alice, "alice"), (bob, "bob")):
        left = tp(lap, f"leave {who}")
        assert left.returncode == 0, left.stderr
    wait_for(lambda: cluster_colors(core, demo, "alice", "bob") == {
        "alice": "green", "bob": "green"}, 30, "traffic back to the app after leaving")


def test_status_says_cluster_unreachable_while_no_manager_answers_then_restored(
        developers: tuple[Laptop, Laptop], demo: str, core: Any, apps: Any) -> None:
    alice, _ = developers
    done = tp(alice, f"intercept {SVC} -n {demo} -p 3000 --name alice "
                     "--http-match blog-demo-id=alice")
    assert done.returncode == 0, done.stderr
    apps.patch_namespaced_deployment_scale("traffic-manager", MANAGER_NS,
                                           {"spec": {"replicas": 0}})
    try:
        status = wait_for(lambda: (s := status_json(alice))["unreachable_since"] and s, 30,
                          "tp status saying the cluster is unreachable")
        assert status["connected"] is True and status["intercepts"], status
        text = tp(alice, "status").stdout
        assert "Cluster: unreachable since " in text and "Cluster: connected" not in text, text
        assert "Traffic manager: unreachable (reconnecting)" in text, text
    finally:
        apps.patch_namespaced_deployment_scale("traffic-manager", MANAGER_NS,
                                               {"spec": {"replicas": 1}})
    wait_for(lambda: ready_manager(core), 60, "the traffic-manager back")
    wait_for(lambda: cluster_colors(core, demo, "alice")["alice"] == "blue", WITHIN,
             "alice's intercept routing again")
    status = wait_for(lambda: (s := status_json(alice))["reconnected"] and
                      "restored" in s["reconnected"] and s["unreachable_since"] is None and s,
                      WITHIN, "the restoration, reachable")
    assert "1 intercept restored (alice)" in status["reconnected"], status
    assert "Cluster: connected" in tp(alice, "status").stdout
    assert tp(alice, "leave alice").returncode == 0
