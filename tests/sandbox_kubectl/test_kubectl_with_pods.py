"""Issue 3's must-show with the real, pinned kubectl: pods that really run on the node.

`logs` (and `-f`, bounded), `exec -- cat /etc/resolv.conf`, `get pods -o wide` with pod
IPs, a rolling update that `kubectl rollout status` follows to the end, and a deleted pod
that its ReplicaSet replaces.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

# A container that logs a line per tick and answers HTTP, so logs, exec and probes have
# something real to look at.
TICKER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker
spec:
  replicas: 2
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector:
    matchLabels: {{app: ticker}}
  template:
    metadata:
      labels: {{app: ticker}}
    spec:
      containers:
        - name: main
          image: python:3.11
          command: ["python3", "-u", "-c"]
          args:
            - |
              import http.server, itertools, threading, time
              srv = http.server.HTTPServer(("", 8080), http.server.SimpleHTTPRequestHandler)
              threading.Thread(target=srv.serve_forever, daemon=True).start()
              for i in itertools.count():
                  print("tick", i, "{version}", flush=True)
                  time.sleep(0.2)
          env:
            - {{name: VERSION, value: "{version}"}}
          ports:
            - {{name: http, containerPort: 8080}}
          readinessProbe:
            tcpSocket: {{port: http}}
            periodSeconds: 1
"""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(sandbox: Any, namespace: str) -> Kubectl:
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node")

    def run(*args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(sandbox.kubeconfig),
                               "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


def deploy_ticker(kubectl: Kubectl, tmp_path: Path, version: str) -> None:
    path = tmp_path / f"ticker-{version}.yaml"
    path.write_text(TICKER.format(version=version))
    kubectl("apply", "-f", str(path))
    kubectl("rollout", "status", "deployment/ticker", "--timeout=90s", timeout=100)


def pod_names(kubectl: Kubectl) -> list[str]:
    out = kubectl("get", "pods", "-l", "app=ticker", "-o",
                  "jsonpath={range .items[*]}{.metadata.name}{'\\n'}{end}").stdout
    return sorted(out.split())


def test_get_pods_wide_shows_running_pods_with_ips_from_the_node_range(
        kubectl: Kubectl, tmp_path: Path) -> None:
    deploy_ticker(kubectl, tmp_path, "v1")
    lines = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert lines[0].split()[:8] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                    "NOMINATED"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 2
    for row in rows:
        assert row[1:3] == ["1/1", "Running"]
        assert ipaddress.ip_address(row[5]) in ipaddress.ip_network("10.244.0.0/24")
        assert row[6] == "sandbox-node"


def test_logs_tail_and_a_bounded_follow_show_the_container_output(
        kubectl: Kubectl, tmp_path: Path) -> None:
    deploy_ticker(kubectl, tmp_path, "v1")
    pod = pod_names(kubectl)[0]
    wait_for(lambda: "tick 3 v1" in kubectl("logs", pod).stdout, 30, "four ticks")
    assert kubectl("logs", pod, "--tail=1").stdout.count("\n") == 1
    # -f keeps streaming new lines until the request timeout ends it (bounded)
    proc = kubectl("logs", "-f", pod, "--tail=1", "--request-timeout=3s", check=False,
                   timeout=30)
    ticks = [line for line in proc.stdout.splitlines() if line.startswith("tick")]
    assert len(ticks) >= 3, proc.stdout + proc.stderr
    numbers = [int(line.split()[1]) for line in ticks]
    assert numbers == sorted(numbers) and numbers[-1] > numbers[0]


def test_exec_cat_resolv_conf_shows_the_cluster_dns_and_search_path(
        kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    deploy_ticker(kubectl, tmp_path, "v1")
    pod = pod_names(kubectl)[0]
    out = kubectl("exec", pod, "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in out
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in out
    assert "options ndots:5" in out
    status = kubectl("exec", pod, "--", "sh", "-c", "exit 3", check=False)
    assert status.returncode == 3


def test_a_rolling_update_replaces_every_pod_and_rollout_status_finishes(
        kubectl: Kubectl, tmp_path: Path) -> None:
    deploy_ticker(kubectl, tmp_path, "v1")
    before = pod_names(kubectl)
    path = tmp_path / "ticker-v2.yaml"
    path.write_text(TICKER.format(version="v2"))
    kubectl("apply", "-f", str(path))
    out = kubectl("rollout", "status", "deployment/ticker", "--timeout=120s", timeout=130)
    assert 'deployment "ticker" successfully rolled out' in out.stdout
    after = wait_for(lambda: (names := pod_names(kubectl)) and len(names) == 2 and names,
                     30, "old pods gone")
    assert not set(before) & set(after)
    for pod in after:
        assert kubectl("exec", pod, "--", "printenv", "VERSION").stdout.strip() == "v2"
    rs = kubectl("get", "rs", "-l", "app=ticker", "-o",
                 "jsonpath={range .items[*]}{.spec.replicas}{' '}{end}").stdout.split()
    assert sorted(rs) == ["0", "2"]


def test_a_deleted_pod_is_replaced_by_its_replicaset(kubectl: Kubectl, tmp_path: Path) -> None:
    deploy_ticker(kubectl, tmp_path, "v1")
    victim = pod_names(kubectl)[0]
    assert f'pod "{victim}" deleted' in kubectl("delete", "pod", victim, "--wait=true",
                                                timeout=60).stdout
    names = wait_for(lambda: (n := pod_names(kubectl)) and len(n) == 2 and victim not in n
                     and n, 60, "a replacement pod")
    kubectl("rollout", "status", "deployment/ticker", "--timeout=60s", timeout=70)
    assert victim not in names
