"""Live volume mounts (sshfs over the traffic-agent's SFTP server) in the sandbox (root).

A laptop's daemon lives in the laptop's mount namespace (every `tp sandbox exec` of the
laptop enters it); the tests look at its mounts through `/proc/<daemon pid>/root` (as
root can), and check once that a later command of the laptop reads them too.
The tests of this module run in order and share one connected laptop.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
HTML = "/usr/share/nginx/html"
CONFIG = "/etc/app-config"


def _manifests(ns: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"},
              "data": {"greeting": "hello"}}
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                "volumeMounts": [{"name": "html", "mountPath": HTML},
                                 {"name": "config", "mountPath": CONFIG, "readOnly": True}]}],
                "volumes": [{"name": "html", "emptyDir": {}},
                            {"name": "config", "configMap": {"name": "web-config"}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]}}
    return config, deployment, service


@pytest.fixture(scope="module")
def app(sandbox: Any, core: Any, apps: Any) -> Iterator[str]:
    ns = f"mounts-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    config, deployment, service = _manifests(ns)
    core.create_namespaced_config_map(ns, config)
    apps.create_namespaced_deployment(ns, deployment)
    core.create_namespaced_service(ns, service)
    yield ns
    core.delete_namespace(ns)


@pytest.fixture(scope="module")
def lap(sandbox: Any, app: str) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 1)
    connected = lap.run(f"{TP} connect", timeout=180)
    assert connected.returncode == 0, connected.stderr
    yield lap
    lap.run(f"{TP} uninstall --all-agents -n {app}", timeout=120)
    lap.run(f"{TP} quit", timeout=30)


def _tp(lap: Laptop, args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


def _daemon_pid(lap: Laptop) -> int:
    out = _tp(lap, "version --format json")
    return int(json.loads(out.stdout)["daemon"]["pid"])


def _seen(pid: int, path: str) -> Path:
    """`path` as the daemon's mount namespace sees it."""
    return Path(f"/proc/{pid}/root") / path.lstrip("/")


def _mounted(pid: int, path: str) -> bool:
    try:
        lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[4] == path for line in lines)


def _exec(core: Any, ns: str, cmd: str) -> str:
    from kubernetes.stream import stream

    pod = next(p for p in core.list_namespaced_pod(ns, label_selector="app=web").items
               if p.metadata.deletion_timestamp is None
               and any(c.name == "traffic-agent" for c in p.spec.containers))
    out = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, ns, container="web",
                 command=["sh", "-c", cmd], stdout=True, stderr=True, stdin=False, tty=False)
    return str(out)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    # progress lines may come first; the error is one line, the last
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]


def _state_file(lap: Laptop) -> Path:
    home = lap.run([sys.executable, "-c", "from tp_daemon import paths; print(paths.home())"])
    return Path(home.stdout.strip()) / "mounts.json"


def test_a_mount_shows_the_pods_volumes_live_both_ways(lap: Laptop, app: str,
                                                        core: Any, tmp_path: Path) -> None:
    where = str(tmp_path / "live")
    made = _tp(lap, f"intercept web -n {app} -p 3999 --name live --mount {where}")
    assert made.returncode == 0, made.stderr
    assert f"Volume Mount Point: {where}" in made.stdout
    pid = _daemon_pid(lap)
    assert _mounted(pid, where)
    # the configMap and the service-account token are there
    assert _read(_seen(pid, f"{where}{CONFIG}/greeting")) == "hello"
    # a later command of the laptop sees the daemon's mount, as on a real machine
    assert lap.run(f"cat {where}{CONFIG}/greeting").stdout == "hello"
    assert _read(_seen(pid, f"{where}/var/run/secrets/kubernetes.io/serviceaccount/token"))
    # a file written in the pod appears locally
    _exec(core, app, f"echo from-pod > {HTML}/pod.txt")
    assert wait_for(lambda: _read(_seen(pid, f"{where}{HTML}/pod.txt")) == "from-pod\n", 20,
                    "the pod's file on the mount")
    # a local write appears in the pod (emptyDir is writable)
    _seen(pid, f"{where}{HTML}/laptop.txt").write_text("from-laptop\n")
    assert wait_for(lambda: _exec(core, app, f"cat {HTML}/laptop.txt") == "from-laptop\n", 20,
                    "the laptop's file in the pod")
    # the configMap volume stays read-only, and follows its ConfigMap (the kubelet
    # updates the projected file)
    with pytest.raises(OSError):
        _seen(pid, f"{where}{CONFIG}/greeting").write_text("changed")
    core.patch_namespaced_config_map("web-config", app, {"data": {"greeting": "changed"}})
    assert wait_for(lambda: _read(_seen(pid, f"{where}{CONFIG}/greeting")) == "changed", 30,
                    "the ConfigMap's change on the mount")


def test_leave_unmounts(lap: Laptop, app: str, core: Any, tmp_path: Path) -> None:
    pid = _daemon_pid(lap)
    where = next(line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text()
                 .splitlines() if line.split()[4].endswith("/live"))
    left = _tp(lap, "leave live")
    assert left.returncode == 0, left.stderr
    assert not _mounted(pid, where)
    # the pod's files were not deleted through the mount
    assert _exec(core, app, f"cat {HTML}/pod.txt") == "from-pod\n"


def test_a_read_only_mount_refuses_writes(lap: Laptop, app: str, tmp_path: Path) -> None:
    where = str(tmp_path / "ro")
    made = _tp(lap, f"intercept web -n {app} -p 3999 --name ro --mount {where}:ro")
    assert made.returncode == 0, made.stderr
    pid = _daemon_pid(lap)
    assert _read(_seen(pid, f"{where}{HTML}/pod.txt")) == "from-pod\n"
    with pytest.raises(OSError):
        _seen(pid, f"{where}{HTML}/nope.txt").write_text("x")
    assert _tp(lap, "leave ro").returncode == 0
    assert not _mounted(pid, where)


def test_rw_on_a_read_only_volume_is_one_line_and_leaves_nothing(lap: Laptop, app: str,
                                                                 tmp_path: Path) -> None:
    where = tmp_path / "rw"
    made = _tp(lap, f"intercept web -n {app} -p 3999 --name rw --mount {where}:rw")
    _one_line_error(made, "read-only", CONFIG, ":ro")
    assert "no intercept named 'rw'" in _tp(lap, "leave rw").stderr
    assert not _mounted(_daemon_pid(lap), str(where))


def test_a_folder_that_is_not_empty_is_refused_in_one_line(lap: Laptop, app: str,
                                                           tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    made = _tp(lap, f"intercept web -n {app} -p 3999 --name busy --mount {busy}")
    _one_line_error(made, "not an empty folder")
    assert (busy / "keep.txt").read_text() == "mine"


def test_nothing_stays_mounted_after_the_daemon_is_killed_and_tp_quit_runs(
        lap: Laptop, app: str, tmp_path: Path) -> None:
    where = str(tmp_path / "crash")
    made = _tp(lap, f"intercept web -n {app} -p 3999 --name crash --mount {where}")
    assert made.returncode == 0, made.stderr
    pid = _daemon_pid(lap)
    state = json.loads(_state_file(lap).read_text())
    sshfs = int(state[where]["pid"])
    assert _mounted(sshfs, where)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the daemon to die")
    _tp(lap, "quit", timeout=60)
    wait_for(lambda: not Path(f"/proc/{sshfs}").exists(), 20, "sshfs to exit")
    assert not _state_file(lap).exists()
    connected = _tp(lap, "connect")
    assert connected.returncode == 0, connected.stderr
