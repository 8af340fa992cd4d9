"""`tp connect|status|quit` end to end, inside the sandbox's laptops (root).

Laptop 1 tells the main story (before/after connect, DNS, the API server's 401, pod
IPs, 100 MB intact, a deleted manager pod, quit leaving nothing); laptop 2 the faults
and bad input (kill -9, overlapping route, forbidden manager namespace, proxy mode).
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 5"


def _listing(lap: Any) -> dict[str, str]:
    """What the daemon could leave behind in a laptop: links, routes, nft tables."""
    return {"links": lap.run("ip -o link").stdout, "routes": lap.run("ip route").stdout,
            "nft": lap.run("nft list tables").stdout}


def _assert_nothing_left(lap: Any, users_route: str = "") -> None:
    left = _listing(lap)
    assert "tp0" not in left["links"], left
    routes = left["routes"].replace(users_route, "")
    assert "10.244." not in routes and "10.96." not in routes, left
    assert "tp-daemon" not in left["nft"], left


@pytest.fixture(scope="module")
def demo(sandbox: Any) -> str:
    from tp_sandbox import lifecycle

    namespace = f"demo-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    return namespace


@pytest.fixture(scope="module")
def lap1(sandbox: Any) -> Iterator[Any]:
    lap = Laptop(sandbox, 1)
    yield lap
    lap.run(f"{TP} quit", timeout=30)


@pytest.fixture(scope="module")
def lap2(sandbox: Any) -> Iterator[Any]:
    lap = Laptop(sandbox, 2)
    yield lap
    lap.run(f"{TP} quit", timeout=30)


@pytest.fixture(scope="module")
def connected(lap1: Any, demo: str) -> dict[str, Any]:
    """Laptop 1 (alice) before and after its first `tp connect` (the admin installed the
    manager at `tp sandbox up`)."""
    before = lap1.run(f"{CURL} http://dataprocessingservice.{demo}:3000/color")
    started = time.monotonic()
    proc = lap1.run(f"{TP} connect", timeout=180)
    return {"before": before, "connect": proc, "seconds": time.monotonic() - started}


def test_before_connect_the_demo_service_is_unreachable(connected: dict[str, Any]) -> None:
    assert connected["before"].returncode != 0


def test_connect_says_where_it_connected_and_the_manager_runs(
        connected: dict[str, Any], sandbox: Any, core: Any) -> None:
    proc = connected["connect"]
    assert proc.returncode == 0, proc.stderr
    context = f"alice@tp-sandbox-{sandbox.name}"
    assert f"Connected to context {context} (https://172.30.0.1:6443)" in proc.stdout
    pods = core.list_namespaced_pod("ambassador", label_selector="app=traffic-manager").items
    assert any(p.status.phase == "Running" for p in pods)


def test_after_connect_cluster_names_and_addresses_work(connected: dict[str, Any], lap1: Any,
                                                        demo: str, core: Any) -> None:
    assert connected["connect"].returncode == 0
    color = lap1.run(f"{CURL} http://dataprocessingservice.{demo}:3000/color")
    assert color.returncode == 0 and "green" in color.stdout, color.stderr
    for name in ("kubernetes.default", f"dataprocessingservice.{demo}"):
        hosts = lap1.run(f"getent hosts {name}")
        assert hosts.returncode == 0 and hosts.stdout.strip(), name
    api = lap1.run(f"{CURL} -k https://kubernetes.default:443/")
    status = json.loads(api.stdout)
    assert status["kind"] == "Status" and status["code"] == 401
    pod = core.list_namespaced_pod(demo, label_selector="app=dataprocessingservice").items[0]
    direct = lap1.run(f"{CURL} http://{pod.status.pod_ip}:3000/color")
    assert "green" in direct.stdout, direct.stderr
    # a name outside the cluster still goes to the laptop's own resolver
    upstream = lap1.run("getent hosts upstream.laptop.test")
    assert upstream.stdout.split()[0] == "127.0.0.1"


def test_a_second_connect_is_a_no_op_that_says_so(connected: dict[str, Any],
                                                   lap1: Any) -> None:
    again = lap1.run(f"{TP} connect", timeout=30)
    assert again.returncode == 0
    assert "Already connected to context" in again.stdout and "nothing to do" in again.stdout


def test_status_shows_daemon_cluster_manager_dns_and_subnets(connected: dict[str, Any],
                                                              lap1: Any) -> None:
    out = lap1.run(f"{TP} status").stdout
    for block in ("Daemon: running", "Cluster: connected", "Traffic manager: connected",
                  "DNS:", "Subnets: (2"):
        assert block in out, out
    assert "10.96.0.0/16" in out and "10.244.0.0/" in out


def test_a_100_mb_transfer_through_the_tunnel_arrives_intact(
        connected: dict[str, Any], lap1: Any, demo: str, core: Any) -> None:
    folder = f"/tmp/h8-blob-{secrets.token_hex(4)}"
    script = (f"mkdir -p {folder} && head -c 100000000 /dev/urandom > {folder}/blob && "
              f"sha256sum {folder}/blob | cut -d' ' -f1 > {folder}/blob.sha && "
              f"exec python3 -m http.server 8080 --directory {folder}")
    core.create_namespaced_pod(demo, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "blob"},
        "spec": {"containers": [{"name": "blob", "image": "python",
                                 "command": ["sh", "-c", script]}]}})
    try:
        ip = wait_for(lambda: core.read_namespaced_pod("blob", demo).status.pod_ip, 60,
                      "the blob pod's IP")
        wait_for(lambda: lap1.run(f"{CURL} http://{ip}:8080/blob.sha").returncode == 0, 90,
                 "the blob server")
        want = lap1.run(f"{CURL} http://{ip}:8080/blob.sha").stdout.strip()
        got = lap1.run(f"curl -sS --max-time 120 http://{ip}:8080/blob | sha256sum",
                       timeout=150).stdout.split()[0]
        assert got == want and len(want) == 64
    finally:
        core.delete_namespaced_pod("blob", demo, grace_period_seconds=0)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_the_daemon_reconnects_when_the_manager_pod_is_deleted(
        connected: dict[str, Any], lap1: Any, demo: str, core: Any) -> None:
    old = {p.metadata.name for p in core.list_namespaced_pod(
        "ambassador", label_selector="app=traffic-manager").items}
    for name in old:
        core.delete_namespaced_pod(name, "ambassador")
    url = f"http://dataprocessingservice.{demo}:3000/color"
    wait_for(lambda: "green" in lap1.run(f"{CURL} {url}").stdout, 120,
             "curl to work again through a new manager pod")
    new = {p.metadata.name for p in core.list_namespaced_pod(
        "ambassador", label_selector="app=traffic-manager").items}
    assert new - old


def test_quit_makes_the_cluster_unreachable_and_leaves_nothing(
        connected: dict[str, Any], lap1: Any, demo: str) -> None:
    proc = lap1.run(f"{TP} quit", timeout=60)
    assert proc.returncode == 0 and "Disconnected" in proc.stdout, proc.stderr
    after = lap1.run(f"{CURL} http://dataprocessingservice.{demo}:3000/color")
    assert after.returncode != 0
    _assert_nothing_left(lap1)


def _manager_logs(core: Any) -> str:
    logs = []
    for pod in core.list_namespaced_pod("ambassador",
                                        label_selector="app=traffic-manager").items:
        logs.append(core.read_namespaced_pod_log(pod.metadata.name, "ambassador"))
    return "\n".join(logs)


def test_a_killed_daemons_session_expires_in_the_manager(
        connected: dict[str, Any], lap2: Any, core: Any) -> None:
    proc = lap2.run(f"{TP} connect", timeout=120)
    assert proc.returncode == 0, proc.stderr
    status = lap2.run(f"{TP} status").stdout
    session = re.search(r"Session\s*: (\S+)", status)
    pid = re.search(r"PID\s*: (\d+)", status)
    assert session and pid, status
    lap2.run(f"kill -9 {pid.group(1)}")
    wait_for(lambda: f"session {session.group(1)} expired" in _manager_logs(core), 60,
             "the manager to expire the killed daemon's session")
    # a new daemon takes over the stale nft table; quit then leaves nothing
    again = lap2.run(f"{TP} connect", timeout=120)
    assert again.returncode == 0, again.stderr
    assert lap2.run(f"{TP} quit", timeout=60).returncode == 0
    _assert_nothing_left(lap2)


def _assert_refused(proc: Any, lap: Any, expected: str, users_route: str = "") -> None:
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Daemon: not running" in lap.run(f"{TP} status").stdout
    _assert_nothing_left(lap, users_route)


def test_a_cluster_range_overlapping_a_route_is_refused(connected: dict[str, Any],
                                                        lap2: Any) -> None:
    lap2.run("ip route add 10.96.0.0/24 dev eth0", check=True)
    try:
        proc = lap2.run(f"{TP} connect", timeout=120)
        _assert_refused(proc, lap2, "cluster range 10.96.0.0/16 overlaps the route "
                                    "10.96.0.0/24 dev eth0", users_route="10.96.0.0/24 dev eth0")
    finally:
        lap2.run("ip route del 10.96.0.0/24 dev eth0")


def test_a_manager_namespace_the_user_cannot_create_is_refused(
        connected: dict[str, Any], lap2: Any, sandbox: Any, core: Any, tmp_path: Any) -> None:
    token = secrets.token_urlsafe(16)
    tokens_file = sandbox.state_dir / "tokens.json"
    tokens = json.loads(tokens_file.read_text())
    tokens[token] = {"user": "h8-nobody", "groups": []}
    tokens_file.write_text(json.dumps(tokens))
    config = yaml.safe_load(lap2.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "nobody.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    namespace = f"h8-forbidden-{secrets.token_hex(3)}"
    command = f"{TP} connect --kubeconfig {kubeconfig} --manager-namespace {namespace}"

    def refused() -> Any:
        proc = lap2.run(command, timeout=60)
        return proc if "forbidden" in proc.stderr else None

    proc = wait_for(refused, 10, "the API server to know the new token")
    _assert_refused(proc, lap2, "--manager-namespace")
    assert namespace not in [n.metadata.name for n in core.list_namespace().items]


def test_proxy_mode_reaches_cluster_names_through_socks5(connected: dict[str, Any],
                                                         lap2: Any, demo: str) -> None:
    proc = lap2.run(f"{TP} connect --proxy-mode", timeout=120)
    assert proc.returncode == 0, proc.stderr
    socks = re.search(r"socks5h://(127\.0\.0\.1:\d+)", proc.stdout)
    assert socks, proc.stdout
    color = lap2.run(f"{CURL} --socks5-hostname {socks.group(1)} "
                     f"http://dataprocessingservice.{demo}:3000/color")
    assert "green" in color.stdout, color.stderr
    left = _listing(lap2)
    assert "tp0" not in left["links"] and "tp-daemon" not in left["nft"]
    assert lap2.run(f"{TP} quit", timeout=60).returncode == 0



def test_a_manager_that_cannot_start_fails_the_first_connect_at_once_and_is_removed(
        connected: dict[str, Any], lap2: Any, core: Any, tmp_path: Any) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(
        {"connect": {"manager_image": "ghcr.io/tp-jupyter/no-such-image:0"}}))
    namespace = f"tp-bad-image-{secrets.token_hex(3)}"
    proc = lap2.run(f"TP_SETTINGS={settings} {TP} connect --kubeconfig "
                    f"{lap2.admin_kubeconfig} --manager-namespace {namespace}", timeout=120)
    # the reason, not the install timeout's message: it did not wait for what cannot happen
    _assert_refused(proc, lap2, "traffic-manager pod traffic-manager-")
    assert "cannot start (ErrImagePull" in proc.stderr or "ImagePullBackOff" in proc.stderr
    wait_for(lambda: namespace not in [n.metadata.name for n in core.list_namespace().items],
             60, "the half-made install to be removed")
