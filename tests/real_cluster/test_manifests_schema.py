"""Every object tp-jupyter creates or patches is valid against the real API schema.

The schema is the one the sandbox serves (the `kubernetes-validate` definitions of
Kubernetes 1.37, strict: no unknown field), plus the API server's own semantic validation
(names, ports, env, probes) as the sandbox implements it, and Pod Security "restricted".
The objects: the traffic-manager install (default and with a team's registry), the demo
app's Deployment and Services after agent injection (named and numeric target ports,
a privileged port) and after restore, and the manager's dry-run Service probe.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from tp_cluster import injector, manifests
from tp_sandbox.apiserver import defaults, podsecurity, resources, validation

KUBERNETES = "1.37.0"
DEMO = Path(__file__).resolve().parents[2] / "sandbox" / "tp_sandbox" / "manifests" / "demo.yaml"
RESTRICTED_DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo-restricted.yaml"


def _demo() -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(DEMO.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = "demo"
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def assert_valid(obj: dict[str, Any]) -> None:
    """Schema (strict) and the API server's semantic validation, on a defaulted copy."""
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    rt = resources.by_kind(obj["apiVersion"], obj["kind"])
    assert rt is not None, f"the sandbox does not serve {obj['kind']}"
    defaulted = copy.deepcopy(obj)
    defaults.apply_defaults(defaulted, rt)
    assert validation.validate(defaulted, rt, old=None, field_validation="Strict") == []


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = podsecurity.pod_spec_of(obj["kind"], obj)
    assert spec is not None
    return spec


def _restricted(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The demo app made compliant the way a team would (so only the agent is tested)."""
    spec = copy.deepcopy(pod_spec)
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 2000,
                               "seccompProfile": {"type": "RuntimeDefault"}}
    for c in spec["containers"]:
        c["securityContext"] = {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}}
    return spec


@pytest.mark.parametrize("options", [
    {},
    {"image": "registry.example.test:5000/team/traffic-manager:1.2.3",
     "agent_image": "registry.example.test:5000/team/traffic-agent:1.2.3",
     "image_pull_secrets": ["regcred", "backup.cred"]},
], ids=["released-images", "team-registry"])
def test_every_object_of_the_manager_install_validates(options: dict[str, Any]) -> None:
    objects = manifests.manager_objects("ambassador", **options)
    assert [o["kind"] for o in objects] == ["Namespace", "ServiceAccount", "ClusterRole",
                                            "ClusterRoleBinding", "Role", "RoleBinding",
                                            "Role", "RoleBinding", "Deployment", "Service"]
    for obj in objects:
        assert_valid(obj)


def test_the_manager_pod_meets_pod_security_restricted() -> None:
    deployment = next(o for o in manifests.manager_objects("ambassador")
                      if o["kind"] == "Deployment")
    assert podsecurity.violations(_pod_spec(deployment), "restricted") == []
    namespace = manifests.manager_objects("ambassador")[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_demo_app_after_injection_validates_and_only_the_app_decides_pod_security() -> None:
    demo = _demo()
    for name, port in [("dataprocessingservice", "http"), ("verylargedatastore", ""),
                       ("verylargejavaservice", "")]:
        deployment, service = demo["Deployment", name], demo["Service", name]
        patched, new_service = injector.inject(
            deployment, service, port, manifests.agent_image(), injector.manager_address(),
            image_pull_secrets=["regcred"])
        assert_valid(patched)
        if new_service is not None:
            assert_valid(new_service)
        agent = patched["spec"]["template"]["spec"]["containers"][-1]
        assert agent["name"] == injector.AGENT_CONTAINER
        assert patched["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        # the agent adds no violation: the injected pod fails exactly where the app does
        app_only = podsecurity.violations(_pod_spec(deployment), "restricted")
        assert all(injector.AGENT_CONTAINER not in v
                   for v in podsecurity.violations(_pod_spec(patched), "restricted"))
        assert app_only  # the seed's demo app itself is not restricted
        compliant = copy.deepcopy(deployment)
        compliant["spec"]["template"]["spec"] = _restricted(_pod_spec(deployment))
        injected, _ = injector.inject(compliant, service, port, manifests.agent_image(),
                                      injector.manager_address())
        assert_valid(injected)
        assert podsecurity.violations(_pod_spec(injected), "restricted") == []
        restored, restored_service = injector.restore(patched, new_service)
        assert_valid(restored)
        assert restored == deployment
        if restored_service is not None:
            assert_valid(restored_service)


def test_an_agent_on_a_privileged_port_adds_only_net_bind_service() -> None:
    demo = _demo()
    deployment = copy.deepcopy(demo["Deployment", "verylargedatastore"])
    deployment["spec"]["template"]["spec"] = _restricted(_pod_spec(deployment))
    patched, service = injector.inject(deployment, demo["Service", "verylargedatastore"], "",
                                       manifests.agent_image(), injector.manager_address(),
                                       first_agent_port=80)
    assert_valid(patched)
    assert service is not None  # a numeric targetPort: the Service now names the agent's port
    assert_valid(service)
    agent = patched["spec"]["template"]["spec"]["containers"][-1]
    assert agent["ports"][0]["containerPort"] == 80
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"],
                                                        "add": ["NET_BIND_SERVICE"]}
    # the agent runs as the pod's non-root uid (same volume access as the app)
    assert "runAsUser" not in agent["securityContext"]
    assert podsecurity.violations(_pod_spec(patched), "restricted") == []


def test_the_documented_restricted_demo_validates_and_meets_restricted() -> None:
    docs = [d for d in yaml.safe_load_all(RESTRICTED_DEMO.read_text()) if d]
    plain = _demo()
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == set(plain)
    for doc in docs:
        assert_valid(doc)
        if doc["kind"] == "Deployment":
            assert podsecurity.violations(_pod_spec(doc), "restricted") == []
            # the same app as the sandbox's demo, only with a securityContext
            bare = copy.deepcopy(doc)
            del bare["spec"]["template"]["spec"]["securityContext"]
            for c in bare["spec"]["template"]["spec"]["containers"]:
                del c["securityContext"]
            original = copy.deepcopy(plain["Deployment", doc["metadata"]["name"]])
            del original["metadata"]["namespace"]
            assert bare == original


def test_the_managers_service_cidr_probe_is_a_valid_service() -> None:
    from tp_cluster.manager.clusterinfo import PROBE_IP

    # the body of tp_cluster.kube.Kube.refused_service_message, created with dryRun
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "tp-service-cidr-probe", "namespace": "ambassador"},
            "spec": {"clusterIP": PROBE_IP, "ports": [{"port": 443}]}}
    assert_valid(body)
