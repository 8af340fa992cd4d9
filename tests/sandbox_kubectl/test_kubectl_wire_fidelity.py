"""Issue 13's must-show with the real, pinned kubectl against the sandbox: the commands
that send protobuf (`create ns`, the typed generators, `auth can-i`, `auth whoami`,
`create token`), `apply --server-side` round trips, and `delete svc`."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

KUBECTL = shutil.which("kubectl") or "kubectl"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {image}
          command: ["sleep", "3600"]
"""


@pytest.fixture
def kubectl(sandbox: Any) -> Kubectl:
    def run(*args: str, check: bool = True, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([KUBECTL, "--kubeconfig", str(sandbox.kubeconfig), *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, **(env or {})})
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    """A namespace made by `kubectl create ns` itself (the seed's own step)."""
    name = f"kp-{secrets.token_hex(3)}"
    out = kubectl("create", "ns", name).stdout
    assert out.strip() == f"namespace/{name} created"
    yield name
    kubectl("delete", "ns", name, "--wait=false", check=False)


def test_kubectl_create_ns_makes_an_active_namespace(kubectl: Kubectl, ns: str) -> None:
    assert kubectl("get", "ns", ns, "-o", "jsonpath={.status.phase}").stdout == "Active"
    again = kubectl("create", "ns", ns, check=False)
    assert again.returncode == 1
    assert f'namespaces "{ns}" already exists' in again.stderr


def test_kubectl_create_deployment_is_rolled_out_by_the_controllers(
        kubectl: Kubectl, ns: str) -> None:
    out = kubectl("create", "deployment", "web", "--image=busybox:1.36", "--replicas=2",
                  "--port=8080", "-n", ns, "--", "sleep", "3600").stdout
    assert out.strip() == "deployment.apps/web created"
    deploy = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert deploy["spec"]["replicas"] == 2
    assert (container["image"], container["command"]) == ("busybox:1.36", ["sleep", "3600"])
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    wait_for(lambda: "replicaset.apps/web-" in kubectl("get", "rs", "-n", ns, "-o",
                                                       "name").stdout, 30,
             "the deployment controller to make a ReplicaSet")


def test_kubectl_create_configmap_and_secret_from_literals(kubectl: Kubectl, ns: str) -> None:
    assert kubectl("create", "configmap", "cfg", "--from-literal=greeting=hello",
                   "--from-literal=count=2", "-n", ns).stdout.strip() == "configmap/cfg created"
    data = json.loads(kubectl("get", "cm", "cfg", "-n", ns, "-o", "jsonpath={.data}").stdout)
    assert data == {"greeting": "hello", "count": "2"}
    assert kubectl("create", "secret", "generic", "sec", "--from-literal=password=s3cr3t",
                   "-n", ns).stdout.strip() == "secret/sec created"
    secret = json.loads(kubectl("get", "secret", "sec", "-n", ns, "-o", "json").stdout)
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cr3t"


def test_kubectl_create_service_clusterip_gets_an_ip_and_delete_answers_the_service(
        kubectl: Kubectl, ns: str) -> None:
    out = kubectl("create", "service", "clusterip", "svc", "--tcp=80:8080", "-n", ns).stdout
    assert out.strip() == "service/svc created"
    svc = json.loads(kubectl("get", "svc", "svc", "-n", ns, "-o", "json").stdout)
    ipaddress.ip_address(svc["spec"]["clusterIP"])
    assert svc["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80,
                                     "targetPort": 8080}]
    gone = kubectl("delete", "svc", "svc", "-n", ns).stdout.strip()
    assert gone == f'service "svc" deleted from {ns} namespace'


def test_kubectl_auth_can_i_and_whoami_for_the_admin_and_a_service_account(
        kubectl: Kubectl, ns: str) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "-n", ns).stdout.strip() == "yes"
    whoami = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["kind"] == "SelfSubjectReview"
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]
    table = kubectl("auth", "whoami").stdout.splitlines()
    assert table[0].split() == ["ATTRIBUTE", "VALUE"]
    assert table[1].split() == ["Username", whoami["status"]["userInfo"]["username"]]

    assert kubectl("create", "serviceaccount", "robot", "-n", ns).stdout.strip() == \
        "serviceaccount/robot created"
    token = kubectl("create", "token", "robot", "-n", ns, "--duration=1h").stdout.strip()
    as_robot = ("--token", token)
    robot = json.loads(kubectl("auth", "whoami", "-o", "json", *as_robot).stdout)
    assert robot["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"
    denied = kubectl("auth", "can-i", "list", "pods", "-n", ns, *as_robot, check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    kubectl("create", "role", "reader", "--verb=get,list", "--resource=pods", "-n", ns)
    kubectl("create", "rolebinding", "robot-reads", "--role=reader",
            f"--serviceaccount={ns}:robot", "-n", ns)
    allowed = kubectl("auth", "can-i", "list", "pods", "-n", ns, *as_robot)
    assert allowed.stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "delete", "pods", "-n", ns, *as_robot,
                   check=False).stdout.strip() == "no"


def test_kubectl_apply_server_side_round_trips_with_conflicts_and_force(
        kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    def manifest(replicas: int, image: str = "busybox:1.36") -> str:
        path = tmp_path / f"web-{replicas}-{image.replace(':', '-')}.yaml"
        path.write_text(DEPLOYMENT.format(replicas=replicas, image=image))
        return str(path)

    first = kubectl("apply", "--server-side", "-f", manifest(1), "-n", ns).stdout.strip()
    assert first == "deployment.apps/web serverside-applied"
    # `kubectl edit` (the editor is a script) takes over the field it changes ...
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/^  replicas: 1$/  replicas: 4/' \"$1\"\n")
    editor.chmod(0o755)
    edited = kubectl("edit", "deploy", "web", "-n", ns, env={"KUBE_EDITOR": str(editor)})
    assert edited.stdout.strip() == "deployment.apps/web edited"
    conflict = kubectl("apply", "--server-side", "-f", manifest(1, "busybox:1.37"), "-n", ns,
                       check=False)
    assert conflict.returncode == 1
    assert conflict.stderr.startswith('error: Apply failed with 1 conflict: conflict with '
                                      '"kubectl-edit" using apps/v1 at ')
    assert conflict.stderr.splitlines()[0].endswith(": .spec.replicas")
    # ... so a re-apply that agrees with the editor on replicas changes the image.
    kubectl("apply", "--server-side", "-f", manifest(4, "busybox:1.37"), "-n", ns)
    assert kubectl("get", "deploy", "web", "-n", ns, "-o",
                   "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"
                   ).stdout == "4 busybox:1.37"

    clash = kubectl("apply", "--server-side", "--field-manager=teammate", "-f", manifest(3),
                    "-n", ns, check=False)
    assert clash.returncode == 1
    # replicas is shared by the applier and the editor: a conflict with each
    assert clash.stderr.startswith(
        'error: Apply failed with 3 conflicts: conflicts with "kubectl":\n'
        "- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image\n"
        'conflicts with "kubectl-edit" using apps/v1 at ')
    assert clash.stderr.splitlines()[3].endswith(":")
    assert clash.stderr.splitlines()[4] == "- .spec.replicas"
    assert "--force-conflicts" in clash.stderr

    kubectl("apply", "--server-side", "--field-manager=teammate", "--force-conflicts",
            "-f", manifest(3), "-n", ns)
    deploy = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json",
                                "--show-managed-fields").stdout)
    assert deploy["spec"]["replicas"] == 3
    owners = {m["manager"]: m for m in deploy["metadata"]["managedFields"]}
    assert owners["teammate"]["operation"] == "Apply"
    assert owners["teammate"]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:replicas" not in owners["kubectl"]["fieldsV1"]["f:spec"]

    scaled = kubectl("scale", "deploy", "web", "--replicas=2", "-n", ns).stdout.strip()
    assert scaled == "deployment.apps/web scaled"
    after_scale = kubectl("apply", "--server-side", "--field-manager=teammate",
                          "-f", manifest(3), "-n", ns, check=False)
    assert after_scale.returncode == 1
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1' in \
        after_scale.stderr


def test_kubectl_moves_from_client_side_to_server_side_apply_without_conflicts(
        kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    first, second = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    first.write_text(DEPLOYMENT.format(replicas=1, image="busybox:1.36"))
    second.write_text(DEPLOYMENT.format(replicas=2, image="busybox:1.37"))
    assert kubectl("apply", "-f", str(first), "-n", ns).stdout.strip() == \
        "deployment.apps/web created"
    # The client-side manager owns replicas and image; kubectl's last-applied annotation
    # lets its first server-side apply take them over, then it migrates the ownership.
    assert kubectl("apply", "--server-side", "-f", str(second), "-n", ns).stdout.strip() == \
        "deployment.apps/web serverside-applied"
    deploy = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json",
                                "--show-managed-fields").stdout)
    assert deploy["spec"]["replicas"] == 2
    managers = {m["manager"] for m in deploy["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" not in managers and "kubectl" in managers


def test_the_demo_step_kubectl_create_ns_works_from_a_laptop_with_the_admins_kubeconfig(
        laptop: Any, kubectl: Kubectl) -> None:
    from tp_jupyter import demo

    step = next(s for s in demo.steps() if s.argv[:3] == ["kubectl", "create", "ns"])
    assert step.argv == ["kubectl", "create", "ns", demo.NAMESPACE]  # the seed's, verbatim
    assert step.admin  # alice and bob, developers, may not create namespaces
    name = f"kp-{secrets.token_hex(3)}"  # the demo's own name belongs to `tp demo`
    k = int(step.where.rsplit("-", 1)[1])
    lap = laptop(k)
    proc = laptop(k, *step.argv[:3], name, env={"KUBECONFIG": str(lap.admin_kubeconfig)})
    try:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"namespace/{name} created"
    finally:
        kubectl("delete", "ns", name, "--wait=false", check=False)


def test_kubectl_discovers_the_sandbox_through_aggregated_discovery(
        kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    proc = kubectl("--cache-dir", str(tmp_path), "get", "deployments,statefulsets,jobs",
                   "-n", ns, "-v=8")
    aggregated = "Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;" \
                 "as=APIGroupDiscoveryList"
    assert proc.stderr.count(aggregated) == 2  # /api and /apis, nothing per group
    assert "/apis/apps/v1?timeout" not in proc.stderr
    assert "/apis/batch/v1?timeout" not in proc.stderr
    urls = re.findall(r'verb="GET" url="https://[^/]+(/[^?"]*)', proc.stderr)
    assert urls[:2] == ["/api", "/apis"]
    assert all("/namespaces/" in url for url in urls[2:])  # then only the three lists
    resources = kubectl("--cache-dir", str(tmp_path), "api-resources", "--api-group=apps"
                        ).stdout.splitlines()
    assert [line.split()[0] for line in resources[1:]] == [
        "controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"]


def test_kubectl_events_watch_shows_the_kubelets_events_through_a_protobuf_stream(
        sandbox: Any, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node (kubelet events)")
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(sandbox.kubeconfig), "events",
                                 "-w", "-n", ns, "-v=8"], stdout=stdout, stderr=stderr)
    try:
        wait_for(lambda: "stream=watch" in err.read_text(), timeout=30,
                 what="kubectl's protobuf watch to start")
        kubectl("run", "sleeper", "-n", ns, "--image=busybox:1.36", "--restart=Never",
                "--", "sleep", "3600")
        wait_for(lambda: "Started" in out.read_text(), timeout=90,
                 what="the kubelet's Started event in kubectl events -w")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    reasons = {line.split()[2] for line in out.read_text().splitlines()[1:] if line.strip()}
    assert {"Scheduled", "Created", "Started"} <= reasons
    started = next(line for line in out.read_text().splitlines() if " Started " in line)
    assert "pod/sleeper" in started.lower()
    assert "Content-Type: application/vnd.kubernetes.protobuf;stream=watch" in err.read_text()
