"""`tp sandbox up|down|status|kubeconfig|exec`: lifecycle, crash cleanup, laptops.

The shared `sandbox` fixture is the instance most tests look at; the crash tests
bring up instances of their own (unique names) and check, by listing before and
after, that `down` leaves no namespace, link, nft table, mount or process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import wait_for
from tp_sandbox import lifecycle
from tp_sandbox.paths import Instance

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

TP = [sys.executable, "-m", "tp_jupyter.cli"]
KUBECTL = shutil.which("kubectl") or "kubectl"


def tp(*args: str, timeout: float = 90, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TP, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def module_built(name: str) -> bool:
    """`python -m name` exists yet (other components arrive while this one is tested)."""
    import importlib.util

    try:
        return importlib.util.find_spec(f"{name}.__main__") is not None
    except ImportError:
        return False


needs_api = pytest.mark.skipif(not module_built("tp_sandbox.apiserver"),
                               reason="API server not built yet")


# ----------------------------------------------------------------- what an instance leaves


def netns_inodes(instance: Instance) -> set[int]:
    from tp_sandbox import laptops

    inodes = set()
    for name in laptops.instance_netns(instance):
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/run/netns/{name}").st_ino)
    return inodes


def footprint(instance: Instance, inodes: set[int] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Everything of `instance` visible on the host (plus all host links and nft tables)."""
    from tp_sandbox import laptops

    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f
                  if str(instance.state_dir) in line or f"/{instance.prefix}" in line}
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            net = os.stat(f"/proc/{entry}/ns/net").st_ino
        except OSError:
            continue
        if (str(instance.state_dir) in cmd or f"--name {instance.name} " in cmd + " "
                or instance.prefix + "laptop" in cmd or net in inodes):
            procs[int(entry)] = cmd
    return {
        "netns": set(laptops.instance_netns(instance)),
        "links": {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()},
        "nft": set(tables.splitlines()),
        "mounts": mounts,
        "processes": procs,
        "state_dir": instance.state_dir.exists(),
    }


def assert_nothing_left(instance: Instance, before: dict[str, Any], inodes: set[int]) -> None:
    after = footprint(instance, inodes)
    assert after["netns"] == set()
    assert after["links"] - before["links"] == set()
    assert after["nft"] - before["nft"] == set()
    assert after["mounts"] == set()
    assert after["processes"] == {}
    assert after["state_dir"] is False


@pytest.fixture
def own_instance() -> Any:
    """A fresh instance name for a test that manages its own sandbox (always cleaned up)."""
    from sandbox_testing import unique_name

    instance = Instance(unique_name("l"))
    yield instance
    lifecycle.down(instance, keep_logs=False)


# ----------------------------------------------------------------- input and undo


def test_bad_input_gets_one_line_that_says_what_to_do_and_makes_nothing(
        own_instance: Instance) -> None:
    before = footprint(own_instance)
    proc = tp("sandbox", "up", "--name", own_instance.name, "--laptops", "99")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "--laptops must be between 0 and" in proc.stderr
    proc = tp("sandbox", "up", "--name", "Bad_Name")
    assert proc.returncode == 1 and "use up to 8 lowercase letters or digits" in proc.stderr
    proc = tp("sandbox", "exec", "--name", own_instance.name, "--", "true")
    assert proc.returncode == 1 and "run 'tp sandbox up --name" in proc.stderr
    assert_nothing_left(own_instance, before, set())


def test_an_up_that_fails_midway_undoes_everything_it_made(own_instance: Instance,
                                                           tmp_path: Path) -> None:
    before = footprint(own_instance)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"sandbox": {"up_timeout": 0.01}}))
    proc = tp("sandbox", "up", "--name", own_instance.name, "--laptops", "2",
              env={"TP_SETTINGS": str(settings)})
    assert proc.returncode == 1, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tp: sandbox up failed: timed out")
    assert "logs kept in /tmp/tp-sandbox-logs-" in last
    shutil.rmtree(last.rpartition("logs kept in ")[2], ignore_errors=True)
    assert_nothing_left(own_instance, before, set())


@pytest.mark.parametrize("stage", ["laptop-created", "supervisor-started"])
def test_down_after_a_killed_up_removes_everything(own_instance: Instance, stage: str) -> None:
    before = footprint(own_instance)
    up = subprocess.Popen([*TP, "sandbox", "up", "--name", own_instance.name, "--laptops", "2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if stage == "laptop-created":
            wait_for(lambda: Path(f"/run/netns/{own_instance.laptop_netns(1)}").exists(), 30,
                     "the first laptop")
        else:
            wait_for(lambda: lifecycle.supervisor_pid(own_instance), 30, "the supervisor")
        inodes = netns_inodes(own_instance)
    finally:
        up.kill()
        up.wait(10)
    proc = tp("sandbox", "down", "--name", own_instance.name, "--delete-logs")
    assert proc.returncode == 0, proc.stderr
    assert f"sandbox {own_instance.name} removed" in proc.stdout
    assert_nothing_left(own_instance, before, inodes)


# ----------------------------------------------------------------- a whole instance


@needs_api
def test_down_after_kill_9_of_every_sandbox_process_removes_everything(
        own_instance: Instance) -> None:
    before = footprint(own_instance)
    has_node = module_built("tp_sandbox.node")
    lifecycle.up(own_instance, laptops=1, node=has_node, progress=lambda _: None)
    if has_node:  # a running pod: its netns and container must go too
        kubectl = [KUBECTL, "--kubeconfig", str(own_instance.kubeconfig)]
        subprocess.run([*kubectl, "run", "victim", "--image=busybox", "--restart=Never", "--",
                        "sleep", "3600"], check=True, capture_output=True, timeout=30)
        wait_for(lambda: subprocess.run(
            [*kubectl, "get", "pod", "victim", "-o", "jsonpath={.status.phase}"],
            capture_output=True, text=True, timeout=30, check=False).stdout == "Running",
            60, "the pod to run")
        assert any("-pod-" in n for n in footprint(own_instance)["netns"])
    inodes = netns_inodes(own_instance)
    procs = footprint(own_instance, inodes)["processes"]
    assert any("tp_sandbox.supervisor" in c for c in procs.values())
    assert any("tp_sandbox.apiserver" in c for c in procs.values())
    procs = {pid: c for pid, c in procs.items() if "tp_sandbox." in c}  # leave pods orphaned
    # a process started in the laptop outlives its exec and must be found by netns
    lifecycle.exec_in_laptop(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"], 1, own_instance)
    for pid in procs:
        os.kill(pid, signal.SIGKILL)
    proc = tp("sandbox", "down", "--name", own_instance.name, "--delete-logs")
    assert proc.returncode == 0, proc.stderr
    assert_nothing_left(own_instance, before, inodes)
    again = tp("sandbox", "down", "--name", own_instance.name)
    assert again.returncode == 0 and "is not up; nothing to remove" in again.stdout


def test_up_serves_the_api_within_ten_seconds(sandbox: Any) -> None:
    if os.environ.get("TP_TEST_SANDBOX"):
        pytest.skip("reused instance: its up time was not measured here")
    limit = 10.0 if not sandbox.has_node else 20.0
    assert 0 < sandbox.up_seconds < limit


def test_a_second_up_reports_the_instance_instead_of_restarting_it(sandbox: Any) -> None:
    pid = lifecycle.supervisor_pid(sandbox.instance)
    started = time.monotonic()
    proc = tp("sandbox", "up", "--name", sandbox.name, "--laptops", "2")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 10
    lines = proc.stdout.strip().splitlines()
    assert "already up" in lines[0]
    assert lines[-1] == str(sandbox.kubeconfig)
    assert lifecycle.supervisor_pid(sandbox.instance) == pid


def test_status_shows_processes_api_and_laptops(sandbox: Any) -> None:
    proc = tp("sandbox", "status", "--name", sandbox.name)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"sandbox {sandbox.name}: up" in out
    assert f"API          {sandbox.api_url} ready" in out
    built = [n for n in ("controllers", "node") if module_built(f"tp_sandbox.{n}")]
    for name in ("apiserver", "laptop-dns-1", "laptop-dns-2", *built):
        assert any(line.split()[:2] == [name, "up"] for line in out.splitlines()), out
    assert f"{sandbox.instance.laptop_netns(2)} 172.31.0.2 ok" in out
    if sandbox.has_node:
        assert "Ready" in out


def test_the_supervisor_restarts_a_crashed_process(sandbox: Any, laptop: Any) -> None:
    def dns_child() -> dict[str, Any]:
        status = json.loads((sandbox.instance.run_dir / "status.json").read_text())
        child: dict[str, Any] = next(c for c in status["children"]
                                     if c["name"] == "laptop-dns-1")
        return child

    first = dns_child()
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: dns_child()["pid"] not in (None, first["pid"]), 20, "a restart")
    assert dns_child()["restarts"] == first["restarts"] + 1
    wait_for(lambda: laptop(1, "getent", "hosts", "upstream.laptop.test").returncode == 0, 20,
             "the restarted resolver to answer")


def test_the_kubeconfig_works_from_the_host_shell_with_kubectl(sandbox: Any) -> None:
    proc = tp("sandbox", "kubeconfig", "--name", sandbox.name)
    path = proc.stdout.strip().splitlines()[-1]
    assert path == str(sandbox.kubeconfig)
    out = subprocess.run([KUBECTL, "--kubeconfig", path, "get", "namespaces"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert "default" in out.stdout and "kube-system" in out.stdout
    ctx = subprocess.run([KUBECTL, "--kubeconfig", path, "config", "current-context"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert ctx.stdout.strip() == f"tp-sandbox-{sandbox.name}"


def test_a_laptop_kubeconfig_names_the_in_sandbox_api_address(sandbox: Any) -> None:
    proc = tp("sandbox", "kubeconfig", "--name", sandbox.name, "--laptop", "2")
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == sandbox.laptop_kubeconfig(2)
    assert "server: https://172.30.0.1:6443" in path.read_text()
    bad = tp("sandbox", "kubeconfig", "--name", sandbox.name, "--laptop", "7")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "tp: laptop 7 does not exist; this sandbox has laptops 1..2"


# ----------------------------------------------------------------- exec and laptops


def test_exec_passes_exit_status_stdout_and_stderr_through(sandbox: Any) -> None:
    proc = tp("sandbox", "exec", "--name", sandbox.name, "--laptop", "2", "--",
              "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "out\n", "err\n")


def test_exec_runs_in_the_laptop_with_its_resolv_conf_and_kubeconfig(laptop: Any) -> None:
    lap = laptop(1)
    proc = lap.run("ip -4 -o addr show eth0; ip route; cat /etc/resolv.conf; echo $KUBECONFIG")
    assert proc.returncode == 0, proc.stderr
    assert "inet 172.31.0.1/32" in proc.stdout
    routes = [line for line in proc.stdout.splitlines() if "dev eth0" in line and "inet" not in
              line]
    assert routes == ["172.29.0.0/24 via 172.30.0.1 dev eth0 ", "172.30.0.1 dev eth0 scope link "]
    assert "nameserver 127.0.0.53\noptions edns0\n" in proc.stdout
    assert proc.stdout.strip().endswith(str(lap.kubeconfig))
    # the host's resolv.conf is untouched
    assert "127.0.0.53" not in Path("/etc/resolv.conf").read_text()


def test_a_background_process_keeps_running_in_the_laptop_after_exec(laptop: Any) -> None:
    lap = laptop(1)
    proc = lap.run("sleep 60 >/dev/null 2>&1 & echo $!", timeout=10)
    pid = int(proc.stdout.strip())
    try:
        assert Path(f"/proc/{pid}").exists()
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{lap.netns}").st_ino
        assert Path(f"/proc/{pid}/root/etc/resolv.conf").read_text().startswith(
            "nameserver 127.0.0.53")
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_mount_made_in_one_exec_is_seen_by_later_execs_of_that_laptop_only(
        laptop: Any, tmp_path: Path) -> None:
    lap, other = laptop(1), laptop(2)
    where = tmp_path / "laptop-mount"
    where.mkdir()
    made = lap.run(f"mount -t tmpfs tp-test {where} && echo hello > {where}/greeting")
    assert made.returncode == 0, made.stderr
    try:
        assert lap.run(f"cat {where}/greeting").stdout == "hello\n"
        assert not (where / "greeting").exists()  # not on the host
        assert other.run(f"ls -A {where}").stdout == ""
    finally:
        lap.run(f"umount {where}")


def test_a_laptop_runs_a_command_in_the_other_laptop_through_exec(laptop: Any) -> None:
    lap = laptop(1)
    # as notebook 3 drives Bob's laptop from Alice's kernel
    proc = lap.run([sys.executable, "-m", "tp_jupyter.cli", "sandbox", "exec", "--laptop",
                    "2", "--", "ip", "-4", "-o", "addr", "show", "eth0"])
    assert proc.returncode == 0, proc.stderr
    assert "inet 172.31.0.2/32" in proc.stdout


def test_the_laptop_resolver_answers_its_zone_and_nxdomain_for_the_rest(laptop: Any) -> None:
    lap = laptop(2)
    assert lap.run(["getent", "hosts", "upstream.laptop.test"]).stdout.split()[0] == "127.0.0.1"
    assert lap.run(["getent", "hosts", "laptop.laptop.test"]).stdout.split()[0] == "172.31.0.2"
    assert lap.run(["getent", "hosts", "example.com"]).returncode == 2
    tcp = lap.run([sys.executable, "-c",
                   "import dns.message, dns.query, dns.rcode;"
                   "q = dns.message.make_query('nothing.laptop.test', 'A');"
                   "r = dns.query.tcp(q, '127.0.0.53', timeout=5);"
                   "print(dns.rcode.to_text(r.rcode()))"])
    assert tcp.stdout.strip() == "NXDOMAIN", tcp.stderr


def test_a_laptop_reaches_the_api_server_but_not_pods_or_services(laptop: Any) -> None:
    lap = laptop(1)
    probe = ("import socket, sys\n"
             "for ip, port in [('10.244.0.5', 80), ('10.96.0.1', 443)]:\n"
             "    try:\n"
             "        socket.create_connection((ip, port), timeout=3)\n"
             "        print(ip, 'connected')\n"
             "    except OSError as e:\n"
             "        print(ip, e.strerror)\n")
    proc = lap.run([sys.executable, "-c", probe])
    assert proc.stdout.splitlines() == ["10.244.0.5 Network is unreachable",
                                        "10.96.0.1 Network is unreachable"], proc.stderr
    out = lap.run([KUBECTL, "get", "--raw", "/readyz"], timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr
    ns = lap.run([KUBECTL, "get", "namespace", "default", "-o", "name"], timeout=30)
    assert ns.stdout.strip() == "namespace/default", ns.stderr


def test_the_host_namespace_has_no_route_to_sandbox_ranges(sandbox: Any) -> None:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True).stdout
    for prefix in ("10.244.", "10.96.", "172.29.", "172.30.", "172.31."):
        assert not any(line.startswith(prefix) for line in routes.splitlines()), routes


def test_demo_becomes_available_and_its_pods_are_unreachable_from_a_laptop(
        sandbox: Any, namespace: str, core: Any, laptop: Any) -> None:
    if not sandbox.has_node:
        pytest.skip("the node is not built yet")
    proc = tp("sandbox", "demo", "--name", sandbox.name, "-n", namespace, timeout=200)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"demo ready in namespace {namespace} after ")
    assert sorted(line.split()[0] for line in lines[1:]) == [
        "deployment/dataprocessingservice", "deployment/verylargedatastore",
        "deployment/verylargejavaservice"]
    assert all(line.split()[1] == "1/1" for line in lines[1:])
    assert "progress" not in proc.stdout and "available" in proc.stderr  # progress on stderr
    pod_ip = core.list_namespaced_pod(namespace).items[0].status.pod_ip
    probe = lap_connect(laptop(1), pod_ip, 3000)
    assert probe == "Network is unreachable"


def lap_connect(lap: Any, ip: str, port: int) -> str:
    code = ("import socket\n"
            "try:\n"
            f"    socket.create_connection(({ip!r}, {port}), timeout=3); print('connected')\n"
            "except OSError as e:\n"
            "    print(e.strerror)\n")
    return str(lap.run([sys.executable, "-c", code]).stdout.strip())


@needs_api
def test_down_stops_the_processes_in_reverse_order_and_keeps_their_logs(
        own_instance: Instance) -> None:
    lifecycle.up(own_instance, laptops=1, node=False, progress=lambda _: None)
    result = lifecycle.down(own_instance)
    assert result.logs is not None
    try:
        log = (result.logs / "supervisor.log").read_text()
        started = [ln.split()[4] for ln in log.splitlines() if ln.endswith(")")
                   and " started (pid " in ln]
        stopped = [ln.split()[5] for ln in log.splitlines() if " stopping " in ln]
        assert started == ["apiserver", "laptop-dns-1", "controllers"]
        assert stopped == list(reversed(started))
        assert (result.logs / "apiserver.log").exists()
    finally:
        shutil.rmtree(result.logs)
