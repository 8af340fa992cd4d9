"""A daemon killed with SIGKILL leaves nothing behind once `tp quit` (or the next `tp
connect`) ran: the laptop's routes, links, nft ruleset and own DNS equal the baseline
taken before (root; laptop 2)."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durability_testing import SVC, cluster_colors, local_app, status_json, tp
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]

OWN_NAME = "upstream.laptop.test"
"""A name the laptop's own resolver answers (127.0.0.1): DNS works when it resolves."""


def _state(lap: Laptop) -> dict[str, str]:
    """What a daemon may change on the laptop, in comparable form."""
    links = lap.run("ip -o link show").stdout
    return {
        "routes": lap.run("ip route show table all").stdout,
        # names and flags; counters and ifindex-free enough to compare
        "links": "\n".join(sorted(re.sub(r"^\d+: ", "", line).split(" link/")[0]
                                  for line in links.splitlines())),
        "nft": lap.run("nft list ruleset").stdout,
        "dns": lap.run(f"getent hosts {OWN_NAME}").stdout.split(" ")[0],
    }


@pytest.fixture(scope="module")
def lap(sandbox: Any) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 2)
    tp(lap, "quit", timeout=60)  # a daemon of an earlier module
    yield lap
    tp(lap, "quit", timeout=60)


@pytest.fixture(scope="module")
def baseline(lap: Laptop) -> dict[str, str]:
    state = _state(lap)
    assert state["dns"] == "127.0.0.1", state
    assert "tp-daemon" not in state["nft"], state
    return state


def _kill_daemon(lap: Laptop) -> int:
    pid = int(status_json(lap)["daemon"]["pid"])
    os.kill(pid, signal.SIGKILL)  # the laptop shares the host's pid namespace
    stat = Path(f"/proc/{pid}/stat")
    wait_for(lambda: not stat.exists() or stat.read_text().split()[2] == "Z", 10,
             f"daemon {pid} to die")
    return pid


def test_quit_after_the_daemon_was_killed_once_connected_restores_the_laptop(
        lap: Laptop, baseline: dict[str, str]) -> None:
    connected = tp(lap, "connect", timeout=180)
    assert connected.returncode == 0, connected.stderr
    assert "tp-daemon" in _state(lap)["nft"]
    _kill_daemon(lap)
    broken = _state(lap)
    # what the crash left: the DNS redirect to a resolver that is gone
    assert "tp-daemon" in broken["nft"] and broken["dns"] != "127.0.0.1", broken
    quit_ = tp(lap, "quit", timeout=60)
    assert quit_.returncode == 0, quit_.stderr
    assert "tp daemon is not running" in quit_.stdout, quit_.stdout
    assert "nft table tp-daemon" in quit_.stdout, quit_.stdout
    assert _state(lap) == baseline


def test_quit_after_the_daemon_was_killed_with_an_active_intercept_restores_the_laptop(
        lap: Laptop, baseline: dict[str, str], demo: str, core: Any) -> None:
    app = local_app(lap, "red")
    try:
        assert tp(lap, "connect", timeout=180).returncode == 0
        done = tp(lap, f"intercept {SVC} -n {demo} -p 3000 --http-match blog-demo-id=crash")
        assert done.returncode == 0, done.stderr
        mount = re.search(r"Volume Mount Point: (\S+)", done.stdout)
        assert mount is not None, done.stdout
        assert cluster_colors(core, demo, "crash")["crash"] == "red"
        _kill_daemon(lap)
        assert lap.run(f"test -d {mount[1]}").returncode == 0  # left behind, for now
        # the session expires (TTL) and the cluster answers again without the laptop
        wait_for(lambda: cluster_colors(core, demo, "crash")["crash"] == "green", 40,
                 "the cluster answering the intercepted request after the daemon died")
        quit_ = tp(lap, "quit", timeout=60)
        assert quit_.returncode == 0, quit_.stderr
        assert f"folder {mount[1]}" in quit_.stdout, quit_.stdout
        assert lap.run(f"test -e {mount[1]}").returncode != 0  # /tmp is shared: this one
        assert _state(lap) == baseline
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_connect_after_a_killed_daemon_cleans_up_and_works(
        lap: Laptop, baseline: dict[str, str], demo: str) -> None:
    assert tp(lap, "connect", timeout=180).returncode == 0
    _kill_daemon(lap)
    assert _state(lap)["dns"] != "127.0.0.1"
    again = tp(lap, "connect", timeout=180)
    assert again.returncode == 0, again.stderr
    assert _state(lap)["dns"] == "127.0.0.1"  # the laptop's own names resolve again
    # and cluster names too, through the new daemon
    assert lap.run(f"getent hosts {SVC}.{demo}").returncode == 0
    assert status_json(lap)["connected"] is True
    assert tp(lap, "quit", timeout=60).returncode == 0
    assert _state(lap) == baseline
