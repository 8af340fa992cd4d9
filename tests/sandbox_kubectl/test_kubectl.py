"""Issue 2's must-show: the real, pinned kubectl against the sandbox API server.

Each test runs `kubectl --kubeconfig <sandbox> ...` in a fresh namespace and checks
its output the way a user reading the terminal would.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

KUBECTL = shutil.which("kubectl") or "kubectl"

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: {tier}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: {image}
          command: ["sleep", "3600"]
          ports:
            - name: http
              containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http
"""


def manifest(tmp_path: Path, image: str = "busybox:1.36", tier: str = "frontend") -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(MANIFEST.format(image=image, tier=tier))
    return path


@pytest.fixture
def kubectl(sandbox: Any, namespace: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool = True, timeout: float = 30
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([KUBECTL, "--kubeconfig", str(sandbox.kubeconfig),
                               "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


def test_kubectl_get_nodes_shows_the_sandbox_node(sandbox: Any, kubectl: Any) -> None:
    if not sandbox.has_node:
        pytest.skip("the node is not built yet")
    out = kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert out[1].split()[:2] == ["sandbox-node", "Ready"]


def test_kubectl_api_resources_lists_core_and_apps_kinds(kubectl: Any) -> None:
    rows = {line.split()[0]: line.split() for line in kubectl("api-resources").stdout
            .splitlines()[1:]}
    assert rows["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]
    for name in ("services", "endpoints", "configmaps", "secrets", "replicasets"):
        assert name in rows


def test_kubectl_apply_of_a_multi_document_manifest_creates_each_object(
        kubectl: Any, tmp_path: Path) -> None:
    out = kubectl("apply", "-f", str(manifest(tmp_path))).stdout.splitlines()
    assert out == ["configmap/web-config created", "deployment.apps/web created",
                   "service/web created"]


def test_a_second_apply_after_editing_image_and_label_patches_only_the_deployment(
        kubectl: Any, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(manifest(tmp_path)))
    out = kubectl("apply", "-f", str(manifest(tmp_path, image="busybox:1.37", tier="backend")))
    assert out.stdout.splitlines() == ["configmap/web-config unchanged",
                                       "deployment.apps/web configured",
                                       "service/web unchanged"]
    deploy = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert deploy["metadata"]["labels"] == {"app": "web", "tier": "backend"}
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"
    last = json.loads(deploy["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["metadata"]["labels"]["tier"] == "backend"
    assert deploy["metadata"]["generation"] == 2


def test_kubectl_get_deploy_rs_svc_endpoints_wide_shows_each_kind(
        sandbox: Any, kubectl: Any, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(manifest(tmp_path)))
    wait_for(lambda: "replicaset.apps/web-" in kubectl("get", "rs", "-o", "name").stdout, 30,
             "the deployment controller to make a ReplicaSet")
    out = kubectl("get", "deploy,rs,svc,endpoints", "-o", "wide").stdout
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    assert len(blocks) == 4, out
    deploy, rs, svc, ep = blocks
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE",
                                 "CONTAINERS", "IMAGES", "SELECTOR"]
    assert deploy[1].split()[0] == "deployment.apps/web"
    assert deploy[1].split()[-3:] == ["web", "busybox:1.36", "app=web"]
    assert rs[0].split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert rs[1].split()[0].startswith("replicaset.apps/web-")
    assert rs[1].split()[1] == "1"
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                              "SELECTOR"]
    name, kind, cluster_ip, _ext, ports = svc[1].split()[:5]
    assert (name, kind, ports) == ("service/web", "ClusterIP", "80/TCP")
    assert cluster_ip.startswith("10.96.")
    assert ep[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert ep[1].split()[0] == "endpoints/web"


def test_kubectl_describe_deployment_shows_spec_and_status(kubectl: Any, tmp_path: Path,
                                                           namespace: str) -> None:
    kubectl("apply", "-f", str(manifest(tmp_path)))
    out = kubectl("describe", "deployment", "web").stdout
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
              for line in out.splitlines() if ":" in line and not line.startswith(" ")}
    assert fields["Name"] == "web"
    assert fields["Namespace"] == namespace
    assert fields["Selector"] == "app=web"
    assert fields["StrategyType"] == "RollingUpdate"
    assert fields["Replicas"].startswith("1 desired")
    assert "Pod Template:" in out
    images = [line.split() for line in out.splitlines() if line.startswith("    Image:")]
    assert images == [["Image:", "busybox:1.36"]]


def test_kubectl_delete_f_removes_every_object_of_the_manifest(kubectl: Any, tmp_path: Path,
                                                               namespace: str) -> None:
    path = manifest(tmp_path)
    kubectl("apply", "-f", str(path))
    out = kubectl("delete", "-f", str(path), "--wait=false").stdout.splitlines()
    suffix = f" deleted from {namespace} namespace"  # kubectl >= 1.33 names the namespace
    assert out == [f'configmap "web-config"{suffix}', f'deployment.apps "web"{suffix}',
                   f'service "web"{suffix}']
    gone = kubectl("get", "-f", str(path), check=False)
    assert gone.returncode == 1
    assert 'configmaps "web-config" not found' in gone.stderr


def test_kubectl_get_pods_watch_streams_a_new_pod(sandbox: Any, namespace: str,
                                                  kubectl: Any) -> None:
    watch = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(sandbox.kubeconfig), "-n", namespace, "get", "pods",
         "--watch", "--request-timeout=60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.put(line)

    threading.Thread(target=pump, name="kubectl-watch-reader", daemon=True).start()
    try:
        # created before or after the watch opens, the pod shows up either way
        kubectl("run", "watched", "--image=busybox:1.36", "--restart=Never", "--",
                "sleep", "3600")
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while not any(line.startswith("watched ") for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no watch line for the pod; got {seen} {watch.stderr}"
            try:
                seen.append(lines.get(timeout=remaining))
            except queue.Empty:
                continue
        header = [line for line in seen if line.startswith("NAME")]
        assert header and header[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        row = next(line for line in seen if line.startswith("watched ")).split()
        assert row[1] == "0/1"
    finally:
        watch.terminate()
        watch.wait(10)


def test_an_anonymous_request_gets_the_401_status(sandbox: Any) -> None:
    out = subprocess.run(["curl", "-sk", f"{sandbox.api_url}/api"], capture_output=True,
                         check=False, text=True, timeout=30, env={**os.environ, "NO_PROXY": "*"})
    status = json.loads(out.stdout)
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Failure", "message": "Unauthorized",
                      "reason": "Unauthorized", "code": 401}
