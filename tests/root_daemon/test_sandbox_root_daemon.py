"""The root daemon service in a sandbox laptop, used by non-root users.

Users are made with `useradd` for this module and removed after it (`nonroot_testing`:
their interpreter, `setpriv` into the laptop with a clean environment; KUBECONFIG is a
copy of the laptop's own kubeconfig, its developer's).

The tests run in order and share the laptop: proxy mode without the service (laptop 2),
install, the outsider, alice routed, bob through the magics, both intercepting at once,
crashes, uninstall while connected, uninstall leaving the laptop as before.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nonroot_testing import User, group_exists
from nonroot_testing import user_python as nonroot_python
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT_TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 8"
SVC = "dataprocessingservice"
TAG = secrets.token_hex(3)
GROUP = f"tpg{TAG}"


# --- users and their interpreter ----------------------------------------------------------

@pytest.fixture(scope="module")
def user_python(sandbox: Any) -> Iterator[str]:
    with nonroot_python(sandbox, Path(f"/tmp/tp-rootd-{TAG}")) as python:
        yield python


@pytest.fixture(scope="module")
def users(user_python: str) -> Iterator[dict[str, User]]:
    made: dict[str, User] = {}
    try:
        for role in ("alice", "bob", "carol", "dave", "outsider"):
            made[role] = User(f"tp{role[0]}{TAG}", user_python)
        yield made
    finally:
        for user in made.values():
            user.remove()
        if group_exists(GROUP):
            subprocess.run(["groupdel", GROUP], capture_output=True, check=False)


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    from tp_sandbox import lifecycle

    namespace = f"demo-{TAG}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def lap(sandbox: Any, users: dict[str, User]) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 1)
    yield lap
    for user in users.values():
        user.run(lap, f"{user.tp} quit", timeout=30)
    lap.run(f"{ROOT_TP} daemon uninstall --force", timeout=60)


def _listing(lap: Laptop) -> dict[str, str]:
    """What the service could leave behind: links, routes, nft, group, socket dir."""
    socket_dir = lap.run(f"{sys.executable} -c 'from tp_daemon.root import paths; "
                         "print(paths.home())'").stdout.strip()
    return {"links": lap.run("ip -o link | sed 's/^[0-9]*: //'").stdout,
            "routes": lap.run("ip route").stdout, "nft": lap.run("nft list ruleset").stdout,
            "group": str(group_exists(GROUP)), "socket": str(Path(socket_dir).exists())}


def _one_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert proc.returncode != 0 and len(errors) == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().endswith(errors[0]), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _color(user: User, lap: Laptop, ns: str, header: str = "") -> str:
    h = f"-H '{header}'" if header else ""
    proc = user.run(lap, f"{CURL} {h} http://{SVC}.{ns}:3000/color")
    return proc.stdout.strip().strip('"') or proc.stderr.strip()


URLLIB = """
    import json, sys, urllib.request
    url = "http://{svc}.{ns}:3000/color"
    try:
        print(json.loads(urllib.request.urlopen(url, timeout=8).read()))
    except Exception as e:
        print("urllib failed:", e)
"""


# --- without the service ----------------------------------------------------------------

MAGICS_PROXY = """
    import json, os, urllib.request
    import httpx, requests
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tp_jupyter")
    out = {{"connect": str(shell.run_line_magic("tp", "connect"))}}
    out["all_proxy"] = os.environ.get("ALL_PROXY", "")
    url = "http://{svc}.{ns}:3000/color"
    out["requests"] = requests.get(url, timeout=8).json()
    out["httpx"] = httpx.get(url, timeout=8).json()
    try:
        urllib.request.urlopen(url, timeout=8)
        out["urllib"] = "reached"
    except Exception as e:
        out["urllib"] = str(e)
    shell.run_line_magic("tp", "quit")
    out["after_quit"] = os.environ.get("ALL_PROXY", "")
    print(json.dumps(out))
"""


def test_without_the_service_the_magics_say_what_works_and_requests_httpx_reach_the_cluster(
        sandbox: Any, users: dict[str, User], demo: str) -> None:
    carol, lap2 = users["carol"], Laptop(sandbox, 2)
    proc = carol.python_code(lap2, MAGICS_PROXY.format(svc=SVC, ns=demo))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    proxy_lines = [line for line in out["connect"].splitlines() if "Proxy mode" in line]
    assert len(proxy_lines) == 1, out["connect"]
    for words in ("requests/httpx", "ALL_PROXY", "urllib, curl", "sudo tp daemon install"):
        assert words in proxy_lines[0], proxy_lines[0]
    assert out["all_proxy"].startswith("socks5h://127.0.0.1:")
    assert out["requests"] == out["httpx"] == "green"
    assert out["urllib"] != "reached"
    assert out["after_quit"] == ""


# --- install ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(lap: Laptop, users: dict[str, User]) -> dict[str, Any]:
    before = _listing(lap)
    proc = lap.run(f"{ROOT_TP} daemon install --group {GROUP}", timeout=60)
    for role in ("alice", "bob", "dave"):
        users[role].join(GROUP)
    return {"before": before, "install": proc}


def test_root_installs_the_service_with_its_group_and_a_group_owned_socket(
        lap: Laptop, installed: dict[str, Any]) -> None:
    proc = installed["install"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("installed the root daemon (supervised)"), proc.stdout
    assert GROUP in proc.stdout
    status = json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)
    assert status["running"] and status["group"] == GROUP and status["leases"] == []
    mode = lap.run(f"stat -c '%a %G' {status['socket']}").stdout.split()
    assert mode == ["660", GROUP]


def test_a_second_install_is_a_clean_result_that_changes_nothing(
        lap: Laptop, installed: dict[str, Any]) -> None:
    pid = json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)["supervisor_pid"]
    again = lap.run(f"{ROOT_TP} daemon install --group {GROUP}", timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already installed" in again.stdout and "nothing to do" in again.stdout
    assert json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)[
        "supervisor_pid"] == pid


def test_a_user_outside_the_group_is_told_in_one_line_and_gets_proxy_mode(
        lap: Laptop, installed: dict[str, Any], users: dict[str, User]) -> None:
    outsider = users["outsider"]
    proc = outsider.run(lap, f"{outsider.tp} connect", timeout=180)
    assert proc.returncode == 0, proc.stderr
    why = [line for line in proc.stdout.splitlines() if "Proxy mode" in line]
    assert len(why) == 1 and f"not in group {GROUP}" in why[0], proc.stdout
    assert f"sudo usermod -aG {GROUP} {outsider.name}" in why[0]
    assert outsider.run(lap, f"{outsider.tp} quit", timeout=60).returncode == 0


def test_the_root_daemon_checks_the_callers_group_itself(
        lap: Laptop, installed: dict[str, Any], users: dict[str, User]) -> None:
    """A process holding the group's gid without being a member (setpriv --groups) gets
    through the socket's mode; SO_PEERCRED + the group database still refuse it."""
    outsider = users["outsider"]
    gid = grp.getgrnam(GROUP).gr_gid
    proc = outsider.run(lap, f"{outsider.tp} connect", timeout=180, groups=str(gid))
    _one_line(proc, "root daemon refused", f"not in group {GROUP}")
    outsider.run(lap, f"{outsider.tp} quit", timeout=60, groups=str(gid))
    log = Path(json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)["log_file"])
    assert f"refused {outsider.name} (uid {outsider.uid}" in log.read_text()


# --- members --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def alice_connected(lap: Laptop, installed: dict[str, Any], users: dict[str, User],
                    demo: str) -> subprocess.CompletedProcess[str]:
    alice = users["alice"]
    return alice.run(lap, f"{alice.tp} connect", timeout=180)


def test_a_member_gets_full_routing_and_curl_and_urllib_reach_cluster_names(
        lap: Laptop, users: dict[str, User], demo: str,
        alice_connected: subprocess.CompletedProcess[str]) -> None:
    alice = users["alice"]
    assert alice_connected.returncode == 0, alice_connected.stderr
    assert "Connected to context" in alice_connected.stdout
    assert "Proxy mode" not in alice_connected.stdout
    assert _color(alice, lap, demo) == "green"
    out = alice.python_code(lap, URLLIB.format(svc=SVC, ns=demo)).stdout.strip()
    assert out == "green"
    routes = lap.run("ip route").stdout
    assert "dev tp-root" in routes and "10.96.0.0/16" in routes
    assert f"tp-root-u{alice.uid}" in lap.run("nft list tables").stdout
    status = json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)
    assert [lease["user"] for lease in status["leases"]] == [alice.name]


def test_another_user_of_the_laptop_is_not_steered_by_a_members_routes(
        lap: Laptop, users: dict[str, User], demo: str,
        alice_connected: subprocess.CompletedProcess[str]) -> None:
    # root is not connected: its DNS and TCP are untouched by alice's table
    assert lap.run(f"{CURL} http://{SVC}.{demo}:3000/color").returncode != 0
    # and a normal name still resolves through the laptop's resolver for alice
    assert users["alice"].run(lap, "getent hosts upstream.laptop.test").stdout.startswith(
        "127.0.0.1")


MAGICS_TUN = """
    import json, urllib.request
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tp_jupyter")
    out = {{"connect": str(shell.run_line_magic("tp", "connect"))}}
    out["status"] = str(shell.run_line_magic("tp", "status"))
    url = "http://{svc}.{ns}:3000/color"
    out["urllib"] = json.loads(urllib.request.urlopen(url, timeout=8).read())
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bob_magics(lap: Laptop, installed: dict[str, Any], users: dict[str, User],
               demo: str, alice_connected: Any) -> dict[str, Any]:
    proc = users["bob"].python_code(lap, MAGICS_TUN.format(svc=SVC, ns=demo))
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_magics_of_a_member_reach_cluster_names_with_urllib(
        bob_magics: dict[str, Any]) -> None:
    assert "Connected to context" in bob_magics["connect"]
    assert "Proxy mode" not in bob_magics["connect"]
    assert bob_magics["urllib"] == "green"


def _local_app(user: User, lap: Laptop, color: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(user.argv(lap, f"COLOR={color} PORT={port} exec {user.python} "
                                           "-m tp_sandbox.demo.dataprocessingservice"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    wait_for(lambda: color in user.run(lap, f"{CURL} http://127.0.0.1:{port}/color").stdout,
             30, f"{user.name}'s local {color} app")
    return proc


def test_two_users_in_one_laptop_each_have_their_own_intercept(
        lap: Laptop, users: dict[str, User], demo: str, alice_connected: Any,
        bob_magics: dict[str, Any]) -> None:
    alice, bob = users["alice"], users["bob"]
    apps = [_local_app(alice, lap, "blue", 3001), _local_app(bob, lap, "red", 3002)]
    try:
        a = alice.run(lap, f"{alice.tp} intercept {SVC} -n {demo} -p 3001:3000 "
                           "--http-match blog-demo-id=alice --mount false")
        assert a.returncode == 0, a.stderr
        b = bob.run(lap, f"{bob.tp} intercept {SVC} -n {demo} -p 3002:3000 "
                         "--http-match blog-demo-id=bob --mount false")
        assert b.returncode == 0, b.stderr
        for user in (alice, bob):
            assert _color(user, lap, demo, "blog-demo-id: alice") == "blue"
            assert _color(user, lap, demo, "blog-demo-id: bob") == "red"
            assert _color(user, lap, demo) == "green"
        status = json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)
        assert sorted(lease["user"] for lease in status["leases"]) == sorted(
            [alice.name, bob.name])
    finally:
        for user, name in ((alice, f"{SVC}-{demo}"), (bob, f"{SVC}-{demo}")):
            user.run(lap, f"{user.tp} leave {name}", timeout=60)
        for proc in apps:
            proc.terminate()
            proc.wait(timeout=10)


RAW_REQUEST = """
    import json
    from tp_daemon.root import client
    for ranges in {ranges!r}:
        reply = client.call({{"op": "route", "ranges": ranges, "proxy_port": 4000,
                             "dns_port": 4001, "context": "raw"}}, 10)
        print(reply.get("error", reply))
"""


def test_ranges_that_would_capture_the_laptops_own_network_are_refused(
        lap: Laptop, installed: dict[str, Any], users: dict[str, User]) -> None:
    dave = users["dave"]
    before = _listing(lap)
    proc = dave.python_code(lap, RAW_REQUEST.format(ranges=[
        ["172.30.0.0/24"], ["172.31.0.0/24"], ["0.0.0.0/0"], ["1.1.1.0/24"]]))
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4, proc.stdout + proc.stderr
    assert "overlaps the route 172.30.0.1/32 dev eth0" in lines[0]
    assert "holds 172.31.0.1, an address of this workstation" in lines[1]
    assert "too wide" in lines[2] and "not a private range" in lines[3]
    assert _listing(lap) == before
    log = Path(json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)["log_file"])
    assert f"refused {dave.name} (uid {dave.uid}" in log.read_text()


# --- crashes --------------------------------------------------------------------------------

def _daemon_pid(user: User, lap: Laptop) -> int:
    out = user.run(lap, f"{user.tp} status").stdout
    return int(next(line.split(":")[1] for line in out.splitlines()
                    if line.strip().startswith("PID")))


def test_a_killed_user_daemon_releases_its_routes_and_dns(
        lap: Laptop, users: dict[str, User], demo: str, bob_magics: dict[str, Any]) -> None:
    bob = users["bob"]
    table = f"tp-root-u{bob.uid}"
    assert table in lap.run("nft list tables").stdout
    os.kill(_daemon_pid(bob, lap), signal.SIGKILL)
    wait_for(lambda: table not in lap.run("nft list tables").stdout, 10,
             "the root daemon to drop bob's table")
    assert bob.run(lap, "getent hosts upstream.laptop.test").stdout.startswith("127.0.0.1")
    assert _color(users["alice"], lap, demo) == "green"  # alice keeps hers


def _serve_pid(lap: Laptop) -> int | None:
    """The root daemon's pid (the supervisor's child), None between a death and restart."""
    sup = json.loads(lap.run(f"{ROOT_TP} daemon status --format json").stdout)[
        "supervisor_pid"]
    children = Path(f"/proc/{sup}/task/{sup}/children").read_text().split()
    return int(children[0]) if children else None


def test_a_root_daemon_crash_is_repaired_and_the_connected_user_gets_routes_and_dns_back(
        lap: Laptop, users: dict[str, User], demo: str, alice_connected: Any) -> None:
    """kill -9 of the root daemon: the supervisor cleans up and restarts it, and alice's
    user daemon asks the new one for her routes and DNS by itself, within seconds."""
    alice = users["alice"]
    old = _serve_pid(lap)
    assert old is not None and _color(alice, lap, demo) == "green"
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: _serve_pid(lap) not in (None, old), 30, "the restarted root daemon")
    wait_for(lambda: _color(alice, lap, demo) == "green", 15,
             "alice's cluster names and routes through the restarted root daemon")
    seconds = time.monotonic() - killed
    print(f"root daemon kill -9 -> alice reaches the cluster again: {seconds:.1f} s")
    assert seconds < 10, seconds
    assert alice.run(lap, f"getent hosts {SVC}.{demo}").stdout.strip()
    assert alice.python_code(lap, URLLIB.format(svc=SVC, ns=demo)).stdout.strip() == "green"
    status = json.loads(lap.run(f"{ROOT_TP} daemon status --format json").stdout)
    assert [lease["user"] for lease in status["leases"]] == [alice.name]
    assert f"tp-root-u{alice.uid}" in lap.run("nft list tables").stdout
    assert "root daemon went away" not in alice.run(lap, f"{alice.tp} status").stdout
    again = alice.run(lap, f"{alice.tp} connect", timeout=180)
    assert again.returncode == 0 and "Proxy mode" not in again.stdout, again.stdout
    # the laptop's own names resolve as before
    assert alice.run(lap, "getent hosts upstream.laptop.test").stdout.startswith("127.0.0.1")


# --- uninstall ------------------------------------------------------------------------------

def test_uninstall_while_a_user_is_connected_is_a_one_line_error(
        lap: Laptop, users: dict[str, User], alice_connected: Any) -> None:
    proc = lap.run(f"{ROOT_TP} daemon uninstall", timeout=60)
    _one_line(proc, users["alice"].name, "tp quit", "--force")
    assert json.loads(lap.run(f"{ROOT_TP} daemon status --json").stdout)["running"]


def test_uninstall_force_cuts_the_user_off_and_leaves_the_laptop_as_before_install(
        lap: Laptop, users: dict[str, User], installed: dict[str, Any]) -> None:
    alice = users["alice"]
    proc = lap.run(f"{ROOT_TP} daemon uninstall --force", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"uninstalled the root daemon; cut off 1 connected "
                                   f"user(s); group {GROUP} removed")
    assert alice.run(lap, f"{alice.tp} quit", timeout=60).returncode == 0
    assert _listing(lap) == installed["before"]
    again = lap.run(f"{ROOT_TP} daemon uninstall", timeout=60)
    assert again.returncode == 0 and "not installed" in again.stdout
