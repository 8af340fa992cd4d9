"""Smoke tests with the real kubectl 1.37 (discovery cache, tables, apply)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from apiserver_testing import Server

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")]

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "python:3.11", ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def kubectl(server: Server, *args: str, stdin: str | None = None) -> str:
    kubectl_bin = shutil.which("kubectl")
    assert kubectl_bin
    proc = subprocess.run([kubectl_bin, "--kubeconfig", str(server.kubeconfig),
                           "--cache-dir", str(server.state_dir / "kube-cache"), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kubectl_get_ns_lists_the_bootstrap_namespaces(server: Server) -> None:
    lines = kubectl(server, "get", "ns").splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    assert {line.split()[0] for line in lines[1:]} >= {
        "default", "kube-system", "kube-public", "kube-node-lease"}


def test_kubectl_api_resources_shows_every_resource(server: Server) -> None:
    out = kubectl(server, "api-resources")
    for name in ("pods", "deployments", "endpointslices", "clusterrolebindings"):
        assert name in out
    assert "deploy" in out and "apps/v1" in out


def test_kubectl_apply_is_idempotent_and_get_wide_shows_real_columns(server: Server,
                                                                     namespace: str) -> None:
    assert "deployment.apps/web created" in kubectl(server, "-n", namespace, "apply", "-f", "-",
                                                    stdin=MANIFEST)
    again = kubectl(server, "-n", namespace, "apply", "-f", "-", stdin=MANIFEST)
    assert "deployment.apps/web unchanged" in again and "service/web unchanged" in again
    deploy = kubectl(server, "-n", namespace, "get", "deploy", "-o", "wide").splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE",
                                 "CONTAINERS", "IMAGES", "SELECTOR"]
    assert deploy[1].split()[:2] == ["web", "0/2"]
    svc = kubectl(server, "-n", namespace, "get", "svc", "web", "-o", "wide").splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                              "SELECTOR"]
    assert svc[1].split()[4] == "80/TCP" and svc[1].split()[-1] == "app=web"
    kubectl(server, "-n", namespace, "scale", "deploy", "web", "--replicas=3")
    assert kubectl(server, "-n", namespace, "get", "deploy", "web", "-o",
                   "jsonpath={.spec.replicas}") == "3"
    kubectl(server, "-n", namespace, "delete", "-f", "-", stdin=MANIFEST)
    assert kubectl(server, "-n", namespace, "get", "svc,deploy", "-o", "name") == ""
