"""Pod Security admission: namespace labels choose the level, pods are refused, workload
templates warned about, with a real API server's messages (no node needed)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from apiserver_testing import Server
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(60)

ROOT_POD = {"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "busybox"},
                                    {"name": "side", "image": "busybox"}]}}
RESTRICTED_MESSAGE = (
    'pods "web" is forbidden: violates PodSecurity "restricted:latest": '
    'allowPrivilegeEscalation != false (containers "app", "side" must set '
    'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (containers '
    '"app", "side" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true '
    '(pod or containers "app", "side" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or containers "app", "side" must set '
    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def warning_text(header: str) -> str:
    """The text of a `299 - "<quoted-string>"` Warning header, unescaped."""
    match = re.fullmatch(r'299 - "((?:[^"\\]|\\.)*)"', header)
    assert match, header
    return re.sub(r"\\(.)", r"\1", match.group(1))


def _labelled(core: client.CoreV1Api, namespace: str, **labels: str) -> str:
    core.patch_namespace(namespace, {"metadata": {"labels": {
        f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}}})
    return namespace


def _refusal(call: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403
    status: dict[str, Any] = json.loads(refused.value.body)
    return status


def _compliant(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    for c in pod["spec"]["containers"]:
        c["securityContext"] = {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    return pod


def test_a_namespace_without_labels_admits_any_pod(core: client.CoreV1Api,
                                                   namespace: str) -> None:
    privileged = copy.deepcopy(ROOT_POD)
    privileged["spec"]["hostNetwork"] = True
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    core.create_namespaced_pod(namespace, privileged)


def test_restricted_refuses_a_root_pod_with_the_api_servers_message(
        core: client.CoreV1Api, namespace: str) -> None:
    _labelled(core, namespace, enforce="restricted")
    status = _refusal(lambda: core.create_namespaced_pod(namespace, ROOT_POD))
    assert status["reason"] == "Forbidden"
    assert status["message"] == RESTRICTED_MESSAGE
    assert status["details"] == {"name": "web", "kind": "pods"}
    # the same pod, made compliant (NET_BIND_SERVICE is the one capability it may add)
    core.create_namespaced_pod(namespace, _compliant(ROOT_POD))


def test_restricted_names_each_broken_rule(core: client.CoreV1Api, namespace: str) -> None:
    _labelled(core, namespace, enforce="restricted", enforce_version="v1.37")
    pod = _compliant(ROOT_POD)
    pod["spec"]["securityContext"]["runAsUser"] = 0
    pod["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": "/var"}},
                              {"name": "scratch", "emptyDir": {}}]
    pod["spec"]["containers"][1]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    pod["spec"]["containers"][1]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    message = _refusal(lambda: core.create_namespaced_pod(namespace, pod))["message"]
    assert message == (
        'pods "web" is forbidden: violates PodSecurity "restricted:v1.37": hostPort '
        '(container "side" uses hostPort 80), unrestricted capabilities (container "side" '
        'must not include "NET_ADMIN" in securityContext.capabilities.add), restricted volume '
        'types (volume "host" uses restricted volume type "hostPath"), runAsUser=0 (pod must '
        'not set runAsUser=0)')


def test_baseline_refuses_host_access_but_not_root(core: client.CoreV1Api,
                                                   namespace: str) -> None:
    _labelled(core, namespace, enforce="baseline")
    core.create_namespaced_pod(namespace, ROOT_POD)  # root is fine for baseline
    pod = copy.deepcopy(ROOT_POD)
    pod["metadata"]["name"] = "host"
    pod["spec"].update(hostNetwork=True, hostPID=True,
                       volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    pod["spec"]["containers"][0]["securityContext"] = {
        "privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    assert _refusal(lambda: core.create_namespaced_pod(namespace, pod))["message"] == (
        'pods "host" is forbidden: violates PodSecurity "baseline:latest": non-default '
        'capabilities (container "app" must not include "SYS_ADMIN" in '
        'securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true), '
        'hostPath volumes (volume "root"), privileged (container "app" must not set '
        'securityContext.privileged=true)')


def test_a_deployment_is_accepted_with_a_warning_and_its_pods_are_refused(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    _labelled(core, namespace, enforce="restricted")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": ROOT_POD["spec"]}}}
    response = server.raw("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                          headers={"Content-Type": "application/json"},
                          body=json.dumps(deployment).encode())
    assert response.status == 201
    expected = RESTRICTED_MESSAGE.replace('pods "web" is forbidden: violates',
                                          "would violate")
    assert warning_text(response.headers["Warning"]) == expected
    # an update that leaves the template alone is not checked again
    again = server.raw("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/web",
                       headers={"Content-Type": "application/merge-patch+json"},
                       body=b'{"spec": {"replicas": 2}}')
    assert again.status == 200 and "Warning" not in again.headers


def test_warn_mode_admits_the_pod_with_a_warning(server: Server, core: client.CoreV1Api,
                                                 namespace: str) -> None:
    _labelled(core, namespace, enforce="baseline", warn="restricted")
    response = server.raw("POST", f"/api/v1/namespaces/{namespace}/pods",
                          headers={"Content-Type": "application/json"},
                          body=json.dumps(ROOT_POD).encode())
    assert response.status == 201
    assert warning_text(response.headers["Warning"]).startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation')


def test_an_unknown_level_is_treated_as_restricted(core: client.CoreV1Api,
                                                   namespace: str) -> None:
    _labelled(core, namespace, enforce="strict-please")
    assert "restricted:latest" in _refusal(
        lambda: core.create_namespaced_pod(namespace, ROOT_POD))["message"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_prints_the_warning_and_the_refusal(server: Server, core: client.CoreV1Api,
                                                    namespace: str) -> None:
    """The real client parses the Warning header and shows the Status message as-is."""
    _labelled(core, namespace, enforce="restricted")
    base = [shutil.which("kubectl") or "kubectl", "--kubeconfig", str(server.kubeconfig),
            "--cache-dir", str(server.state_dir / "kube-cache"), "-n", namespace]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": ROOT_POD["spec"]}}}
    pod = {"apiVersion": "v1", "kind": "Pod", **ROOT_POD}
    for obj in (deployment, pod):
        done = subprocess.run([*base, "create", "-f", "-"], input=json.dumps(obj),
                              capture_output=True, text=True, timeout=60, check=False)
        if obj is deployment:
            assert done.returncode == 0, done.stderr
            expected = RESTRICTED_MESSAGE.replace('pods "web" is forbidden: violates',
                                                  "would violate")
            assert f"Warning: {expected}" in done.stderr
        else:
            assert done.returncode != 0
            assert done.stderr.strip() == (
                f"Error from server (Forbidden): error when creating \"STDIN\": "
                f"{RESTRICTED_MESSAGE}")


def test_labelling_a_namespace_warns_about_its_violating_pods(
        server: Server, core: client.CoreV1Api, namespace: str) -> None:
    for name in ("a", "b", "c"):
        pod = copy.deepcopy(ROOT_POD)
        pod["metadata"]["name"] = name
        core.create_namespaced_pod(namespace, pod)
    core.create_namespaced_pod(namespace, {**_compliant(ROOT_POD),
                                           "metadata": {"name": "good"}})
    response = server.raw(
        "PATCH", f"/api/v1/namespaces/{namespace}",
        headers={"Content-Type": "application/merge-patch+json"},
        body=json.dumps({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}}).encode())
    assert response.status == 200
    assert [warning_text(w) for w in response.headers.getlist("Warning")] == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "a (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile"]
    # the pods keep running; the same level again says nothing
    assert len(core.list_namespaced_pod(namespace).items) == 4
    again = server.raw("PATCH", f"/api/v1/namespaces/{namespace}",
                       headers={"Content-Type": "application/merge-patch+json"},
                       body=b'{"metadata": {"annotations": {"x": "y"}}}')
    assert "Warning" not in again.headers
