"""`tp replace` against the sandbox: while replaced the app's process is gone from the pod
(the node's process view of the pod's network namespace), requests reach the local app and
the app's environment comes here; `tp leave` gives the Deployment its exact spec back and
the app runs again. Replacing a workload another developer intercepts is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import Laptop, wait_for
from tp_output_testing import check

Tp = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

SVC = "dataprocessingservice"
APP = "tp_sandbox.demo.dataprocessingservice"   # what the app container runs
PORT = 3821


def pod_commands(sandbox: Any, core: Any, namespace: str) -> dict[str, list[str]]:
    """Running pods of the demo workload -> the command lines of the processes in their
    network namespace (the sandbox's process view of a pod)."""
    found: dict[str, list[str]] = {}
    for pod in core.list_namespaced_pod(namespace, label_selector=f"app={SVC}").items:
        if pod.metadata.deletion_timestamp or pod.status.phase != "Running":
            continue
        netns = Path("/run/netns") / sandbox.instance.pod_netns(pod.metadata.uid)
        try:
            inode = netns.stat().st_ino
        except FileNotFoundError:
            continue
        commands = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.stat(proc / "ns" / "net").st_ino != inode:
                    continue
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            commands.append(" ".join(a.decode(errors="replace") for a in argv if a))
        found[pod.metadata.name] = commands
    return found


def app_running(sandbox: Any, core: Any, namespace: str) -> bool | None:
    """True: every running pod runs the app; False: none does; None: in between."""
    pods = pod_commands(sandbox, core, namespace)
    if not pods:
        return None
    running = [any(APP in c for c in commands) for commands in pods.values()]
    return True if all(running) else False if not any(running) else None


def deployment_spec(apps: Any, kube: Any, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = kube.sanitize_for_serialization(
        apps.read_namespaced_deployment(SVC, namespace).spec)
    return spec


@pytest.fixture(scope="module")
def local_app(lap: Laptop) -> Iterator[None]:
    app = lap.popen([sys.executable, "-m", APP], env={"COLOR": "violet", "PORT": str(PORT)},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "violet" in lap.run(f"curl -sS --max-time 5 "
                                             f"http://127.0.0.1:{PORT}/color").stdout,
                 30, "the local app")
        yield
    finally:
        app.terminate()
        app.wait(10)


def test_replace_stops_the_app_in_the_pod_and_leave_brings_it_back_exactly(
        tp: Tp, lap: Laptop, *, sandbox: Any, core: Any, apps: Any, kube: Any, demo: str,
        local_app: None) -> None:
    assert tp("connect").returncode == 0
    assert app_running(sandbox, core, demo) is True
    before = deployment_spec(apps, kube, demo)
    # a traffic-agent already installed by an earlier intercept: replace still takes the app
    proc = tp("intercept", SVC, "-n", demo, "-p", str(PORT), "--mount", "false",
              "--http-match", "x-dev=earlier")
    assert proc.returncode == 0, proc.stderr
    assert tp("leave", f"{SVC}-{demo}").returncode == 0
    proc = tp("replace", SVC, "-n", demo, "-p", str(PORT), "--mount", "false",
              "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = check(json.loads(proc.stdout), "replace")
    assert doc["replaced"] is True and doc["mechanism"] == "tcp" and doc["state"] == "active"
    assert doc["environment"]["COLOR"] == "green"           # the app's env, here
    wait_for(lambda: app_running(sandbox, core, demo) is False, 60,
             "the app's process gone from the replaced pods")
    commands = next(iter(pod_commands(sandbox, core, demo).values()))
    assert any("tp_cluster.agent" in c for c in commands)   # only the agent runs there
    answer = lap.run(f"curl -sS --max-time 10 http://{SVC}.{demo}:3000/color").stdout
    assert "violet" in answer                               # the local app answers

    assert tp("leave", doc["name"]).returncode == 0
    wait_for(lambda: app_running(sandbox, core, demo) is True, 60,
             "the app running again after leave")
    wait_for(lambda: deployment_spec(apps, kube, demo) == before, 30,
             "the Deployment's spec as it was")
    annotations = apps.read_namespaced_deployment(SVC, demo).metadata.annotations or {}
    assert not [k for k in annotations if k.startswith("tp-jupyter.io/")]
    wait_for(lambda: "green" in lap.run(f"curl -sS --max-time 10 "
                                        f"http://{SVC}.{demo}:3000/color").stdout,
             30, "the cluster's app answering again")


def test_replace_of_a_workload_someone_else_intercepts_is_refused(
        tp: Tp, sandbox: Any, home: Path, demo: str) -> None:
    other = Laptop(sandbox, 2)
    env = {"TP_HOME": str(home / "tp2")}

    def tp2(*args: str) -> subprocess.CompletedProcess[str]:
        return other.run([sys.executable, "-m", "tp_jupyter.cli", *args], timeout=200,
                         env=env)

    try:
        assert tp2("connect").returncode == 0
        proc = tp2("intercept", "verylargejavaservice", "-n", demo, "-p", "3822",
                   "--mount", "false", "--http-match", "x-dev=other")
        assert proc.returncode == 0, proc.stderr
        refused = tp("replace", "verylargejavaservice", "-n", demo, "-p", "3823",
                     "--mount", "false")
        assert refused.returncode == 1
        error = refused.stderr.strip().splitlines()[-1]   # after the progress lines
        assert error.startswith("tp: cannot replace verylargejavaservice")
        assert error.endswith("they must leave it first")
        as_json = tp("replace", "verylargejavaservice", "-n", demo, "-p", "3823",
                     "--mount", "false", "--format", "json")
        message = check(json.loads(as_json.stdout), "error")["error"]["message"]
        assert "\n" not in message and message == error.removeprefix("tp: ")
        status = json.loads(tp("status", "--format", "json").stdout)
        assert status["intercepts"] == []                     # nothing left half-done
    finally:
        tp2("quit")
