"""Pod Security "restricted" and images from a team's registry, end to end in the sandbox.

The sandbox enforces Pod Security from namespace labels like a real API server, and its
kubelet runs a container as its `runAsUser`, so these tests show what a real cluster with
`pod-security.kubernetes.io/enforce: restricted` would do:

- the traffic-manager installs into its own restricted namespace from a configured
  registry, runs as a non-root uid, and hands that registry's agent image to the agent;
- an intercept of a compliant app in a restricted namespace works end to end (the
  agent's pod is admitted and routes the service's traffic to the laptop);
- a pod that violates the profile is refused with the real server's message, and a
  Deployment of such pods is accepted with a warning while its pods are refused;
- an agent of another version is reported in one line with the fix.

The tests of this module run in order and share one connected laptop (laptop 1).
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox_testing import Laptop, wait_for
from tp_protocol import VERSION

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 8"
SVC = "dataprocessingservice"
REGISTRY = "registry.example.test:5000/team"
APP_UID = 10001  # docs/demo-restricted.yaml's runAsUser
DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo-restricted.yaml"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted"}


def _compliant_demo() -> list[dict[str, Any]]:
    """The seed's dataprocessingservice from docs/demo-restricted.yaml (the documented one)."""
    return [d for d in yaml.safe_load_all(DEMO.read_text()) if d and d["metadata"]["name"] == SVC]


def _processes(module: str, env: dict[str, str]) -> list[tuple[int, int]]:
    """(pid, uid) of the host processes running `python -m module` with that env."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if module.encode() not in argv:
                continue
            environ = dict(item.split("=", 1) for item in
                           (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                           if "=" in item)
            status = (proc / "status").read_text()
        except OSError:
            continue
        if all(environ.get(k) == v for k, v in env.items()):
            uid = int(next(line for line in status.splitlines()
                           if line.startswith("Uid:")).split()[1])
            found.append((int(proc.name), uid))
    return found


def _confinement(pid: int) -> dict[str, str]:
    """What the kernel says about a process: uid, capabilities, no_new_privs, root mount."""
    status = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    root = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if line.split()[4] == "/")
    return {"uid": status["Uid"].split()[0], "CapEff": status["CapEff"].strip(),
            "NoNewPrivs": status["NoNewPrivs"].strip(), "root": root[5].split(",")[0]}


CONFINED = {"uid": "10001", "CapEff": "0000000000000000", "NoNewPrivs": "1", "root": "ro"}
"""A restricted container's process: non-root, no capabilities, no_new_privs, read-only /."""


def _tp(lap: Laptop, args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return lap.run(f"{TP} {args}", timeout=timeout)


@pytest.fixture(scope="module")
def app_namespace(sandbox: Any, core: Any, apps: Any) -> Iterator[str]:
    from kubernetes import utils

    name = f"restricted-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    utils.create_from_yaml(core.api_client, yaml_objects=_compliant_demo(), namespace=name)

    def ready() -> bool:
        st = apps.read_namespaced_deployment(SVC, name).status
        return bool(st.ready_replicas == 1)

    wait_for(ready, 60, f"the compliant {SVC} in {name}")
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def manager_namespace(sandbox: Any, core: Any) -> Iterator[str]:
    name = f"tp-mgr-{secrets.token_hex(3)}"
    yield name
    from kubernetes.client import RbacAuthorizationV1Api

    core.delete_namespace(name)
    RbacAuthorizationV1Api(core.api_client).delete_cluster_role(f"traffic-manager-{name}")
    RbacAuthorizationV1Api(core.api_client).delete_cluster_role_binding(
        f"traffic-manager-{name}")


@pytest.fixture(scope="module")
def dev(sandbox: Any, app_namespace: str, manager_namespace: str) -> Iterator[Laptop]:
    lap = Laptop(sandbox, 1)
    local = lap.popen([sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"],
                      env={"COLOR": "blue", "PORT": "3000"}, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    wait_for(lambda: "blue" in lap.run(f"{CURL} http://127.0.0.1:3000/color").stdout, 30,
             "the local blue app")
    # installing a manager is the admin's (laptop 1's own kubeconfig is alice's)
    connected = _tp(lap, f"connect --kubeconfig {lap.admin_kubeconfig} "
                         f"--manager-namespace {manager_namespace} --registry "
                         f"{REGISTRY} --image-pull-secret regcred", timeout=180)
    assert connected.returncode == 0, connected.stderr
    yield lap
    _tp(lap, "quit", timeout=30)
    local.terminate()
    local.wait(timeout=10)


def test_the_manager_comes_from_the_configured_registry_and_runs_as_non_root(
        dev: Laptop, manager_namespace: str, core: Any, apps: Any) -> None:
    ns = core.read_namespace(manager_namespace)
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = core.list_namespaced_pod(manager_namespace, label_selector="app=traffic-manager").items[0]
    container = pod.spec.containers[0]
    assert container.image == f"{REGISTRY}/traffic-manager:{VERSION}"
    env = {e.name: e.value for e in container.env}
    assert env["TP_AGENT_IMAGE"] == f"{REGISTRY}/traffic-agent:{VERSION}"
    assert env["TP_AGENT_IMAGE_PULL_SECRETS"] == "regcred"
    assert [s.name for s in pod.spec.image_pull_secrets] == ["regcred"]
    # the kubelet really runs it as the image's non-root user
    (pid, uid), = _processes("tp_cluster.manager", {"TP_MANAGER_NAMESPACE": manager_namespace})
    assert uid == 10001
    assert _confinement(pid) == CONFINED


def test_asking_an_installed_manager_for_other_images_says_how_to_change_them(
        sandbox: Any, dev: Laptop, manager_namespace: str) -> None:
    lap = Laptop(sandbox, 2)
    out = _tp(lap, f"connect --kubeconfig {lap.admin_kubeconfig} "
                   f"--manager-namespace {manager_namespace} --registry other.test/x",
              timeout=180)
    try:
        assert out.returncode == 0, out.stderr
        warning = next(line for line in out.stdout.splitlines() if line.startswith("Warning:"))
        assert warning == (
            f"Warning: the traffic-manager in {manager_namespace} runs "
            f"{REGISTRY}/traffic-manager:{VERSION} (agents {REGISTRY}/traffic-agent:{VERSION}),"
            f" not the requested other.test/x/traffic-manager:{VERSION} "
            f"(other.test/x/traffic-agent:{VERSION}): run `tp uninstall --everything` and "
            "connect again to change its images")
    finally:
        _tp(lap, "quit", timeout=30)


def test_an_intercept_in_a_restricted_namespace_works_end_to_end(
        dev: Laptop, app_namespace: str, core: Any, apps: Any) -> None:
    ns = app_namespace
    before = apps.api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment(SVC, ns))["spec"]
    out = _tp(dev, f"intercept {SVC} -n {ns} -p 3000", timeout=180)
    assert out.returncode == 0, out.stderr
    assert "ACTIVE" in out.stdout, out.stdout

    pods = core.list_namespaced_pod(ns, label_selector=f"app={SVC}").items
    agent_pods = [p for p in pods if any(c.name == "traffic-agent" for c in p.spec.containers)
                  and not p.metadata.deletion_timestamp]
    assert agent_pods, "the agent's pod was not admitted"
    agent = next(c for c in agent_pods[0].spec.containers if c.name == "traffic-agent")
    assert agent.image == f"{REGISTRY}/traffic-agent:{VERSION}"
    assert agent.security_context.allow_privilege_escalation is False
    assert agent.security_context.capabilities.drop == ["ALL"]
    assert [s.name for s in agent_pods[0].spec.image_pull_secrets] == ["regcred"]
    # the agent runs as the app pod's non-root uid, as does the app
    agents = _processes("tp_cluster.agent", {"AGENT_NAMESPACE": ns})
    assert agents and {uid for _, uid in agents} == {APP_UID}
    assert all(_confinement(pid) == CONFINED for pid, _ in agents)

    wait_for(lambda: "blue" in dev.run(f"{CURL} http://{SVC}.{ns}:3000/color").stdout, 30,
             "the intercepted service to answer from the laptop")

    left = _tp(dev, f"leave {SVC}-{ns}")
    assert left.returncode == 0, left.stderr
    removed = _tp(dev, f"uninstall --agent {SVC} -n {ns}", timeout=180)
    assert removed.returncode == 0, removed.stderr
    after = apps.api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment(SVC, ns))["spec"]
    assert after == before
    wait_for(lambda: "green" in dev.run(f"{CURL} http://{SVC}.{ns}:3000/color").stdout, 60,
             "the app to answer again")


def test_a_pod_that_violates_restricted_is_refused_with_the_api_servers_message(
        app_namespace: str, core: Any) -> None:
    from kubernetes.client import ApiException

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root-shell"},
           "spec": {"containers": [{"name": "shell", "image": "busybox",
                                    "command": ["sleep", "60"]}]}}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(app_namespace, pod)
    assert refused.value.status == 403
    status = json.loads(refused.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "root-shell" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "shell" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "shell" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "shell" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "shell" must '
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')

    host = copy.deepcopy(pod)
    host["metadata"]["name"] = "host-shell"
    host["spec"]["hostNetwork"] = True
    host["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    host["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(app_namespace, host)
    message = json.loads(refused.value.body)["message"]
    assert message.startswith('pods "host-shell" is forbidden: violates PodSecurity '
                              '"restricted:latest": host namespaces (hostNetwork=true), '
                              'privileged (container "shell" must not set '
                              'securityContext.privileged=true), ')
    assert 'restricted volume types (volume "root" uses restricted volume type "hostPath")' \
        in message


def test_a_deployment_of_violating_pods_is_accepted_with_a_warning_and_its_pods_refused(
        app_namespace: str, apps: Any, core: Any) -> None:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rooty"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rooty"}},
                     "template": {"metadata": {"labels": {"app": "rooty"}},
                                  "spec": {"containers": [{"name": "shell", "image": "busybox",
                                                           "command": ["sleep", "60"]}]}}}}
    response = apps.create_namespaced_deployment(app_namespace, body, _preload_content=False)
    assert response.status == 201
    # a quoted-string (RFC 7234): the message's quotes come escaped
    warning = response.headers.get("Warning", "").replace('\\"', '"')
    assert 'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false ' \
           '(container "shell" must set securityContext.allowPrivilegeEscalation=false)' \
           in warning

    def refused_event() -> str:
        events = core.list_namespaced_event(app_namespace).items
        return next((e.message for e in events if e.reason == "FailedCreate"
                     and e.involved_object.kind == "ReplicaSet"), "")

    message = wait_for(refused_event, 30, "the ReplicaSet's FailedCreate event", interval=0.5)
    assert 'is forbidden: violates PodSecurity "restricted:latest"' in message
    assert not core.list_namespaced_pod(app_namespace, label_selector="app=rooty").items
    apps.delete_namespaced_deployment("rooty", app_namespace)


def test_an_agent_of_another_version_is_reported_in_one_line_with_the_fix(
        dev: Laptop, app_namespace: str, apps: Any) -> None:
    ns = app_namespace
    out = _tp(dev, f"intercept {SVC} -n {ns} -p 3000", timeout=180)
    assert out.returncode == 0, out.stderr
    # an older agent: the same image, told it is version 0.0.1
    old = "0.0.1"
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "traffic-agent",
        "command": [sys.executable, "-c",
                    f"import tp_protocol; tp_protocol.VERSION = {old!r}; import runpy; "
                    "runpy.run_module('tp_cluster.agent', run_name='__main__')"]}]}}}}
    apps.patch_namespaced_deployment(SVC, ns, patch)

    def warned() -> str:
        listing = _tp(dev, f"list -n {ns}").stdout
        return next((line for line in listing.splitlines() if "differs from" in line), "")

    line = wait_for(warned, 90, "the version skew warning in tp list", interval=1)
    assert f"traffic-agent of pod {SVC}-" in line
    assert f"{old} differs from traffic-manager {VERSION}" in line
    assert f"tp uninstall --agent {SVC} -n {ns}" in line
    _tp(dev, f"leave {SVC}-{ns}")
    removed = _tp(dev, f"uninstall --agent {SVC} -n {ns}", timeout=180)
    assert removed.returncode == 0, removed.stderr


def test_a_bad_image_option_fails_in_one_line_and_installs_nothing(
        sandbox: Any, core: Any) -> None:
    from kubernetes.client import ApiException

    lap = Laptop(sandbox, 2)
    manager_ns = f"tp-bad-{secrets.token_hex(3)}"
    out = _tp(lap, f"connect --kubeconfig {lap.admin_kubeconfig} "
                   f"--manager-namespace {manager_ns} --manager-image 'Bad Image'")
    assert out.returncode != 0
    errors = [line for line in out.stderr.strip().splitlines() if line.startswith("tp: ")]
    assert len(errors) == 1 and out.stderr.strip().endswith(errors[0]), out.stderr
    assert "'Bad Image' is not an image reference" in errors[0]
    assert "--manager-image" in errors[0]
    with pytest.raises(ApiException) as missing:
        core.read_namespace(manager_ns)
    assert missing.value.status == 404
    assert "not running" in _tp(lap, "status").stdout.lower()


def _port_80_pod(name: str, add: list[str]) -> dict[str, Any]:
    """A restricted pod whose non-root process binds port 80 (as an agent on a low port)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "web", "image": "python",
                         "command": [sys.executable, "-m", "http.server", "80"],
                         "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                         "securityContext": {"allowPrivilegeEscalation": False,
                                             "capabilities": {"drop": ["ALL"], "add": add}}}]}}


def test_a_non_root_container_binds_a_port_below_1024_only_with_net_bind_service(
        app_namespace: str, core: Any) -> None:
    core.create_namespaced_pod(app_namespace, _port_80_pod("with-cap", ["NET_BIND_SERVICE"]))
    core.create_namespaced_pod(app_namespace, _port_80_pod("without-cap", []))

    def ready() -> bool:
        pod = core.read_namespaced_pod("with-cap", app_namespace)
        return any(c.type == "Ready" and c.status == "True"
                   for c in pod.status.conditions or [])

    wait_for(ready, 30, "the pod with NET_BIND_SERVICE to listen on port 80", interval=0.5)

    def failed_log() -> str:
        if core.read_namespaced_pod("without-cap", app_namespace).status.phase != "Failed":
            return ""
        return str(core.read_namespaced_pod_log("without-cap", app_namespace))

    log = wait_for(failed_log, 30, "the pod without it to fail", interval=0.5)
    assert "PermissionError" in log and "Permission denied" in log
    for name in ("with-cap", "without-cap"):
        core.delete_namespaced_pod(name, app_namespace, grace_period_seconds=0)


def test_the_kubelet_refuses_to_run_a_root_image_as_run_as_non_root(
        app_namespace: str, core: Any) -> None:
    pod = _port_80_pod("root-image", [])
    del pod["spec"]["securityContext"]["runAsUser"]  # busybox's user is root
    pod["spec"]["containers"][0].update(image="busybox", command=["sleep", "60"])
    del pod["spec"]["containers"][0]["readinessProbe"]
    core.create_namespaced_pod(app_namespace, pod)

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("root-image", app_namespace).status
        state = (statuses.container_statuses or [None])[0]
        return state and state.state.waiting

    reason = wait_for(waiting, 30, "the container to wait", interval=0.5)
    assert reason.reason == "CreateContainerConfigError"
    assert reason.message.startswith("container has runAsNonRoot and image will run as root "
                                     f'(pod: "root-image_{app_namespace}(')
    core.delete_namespaced_pod("root-image", app_namespace, grace_period_seconds=0)
