"""Defaults a real API server fills in."""

from __future__ import annotations

import copy
from typing import Any

from tp_sandbox.apiserver.defaults import apply_defaults, image_pull_policy
from tp_sandbox.apiserver.resources import by_kind

DEPLOYMENT = by_kind("apps/v1", "Deployment")
REPLICASET = by_kind("apps/v1", "ReplicaSet")
POD = by_kind("v1", "Pod")
SERVICE = by_kind("v1", "Service")
NAMESPACE = by_kind("v1", "Namespace")
SECRET = by_kind("v1", "Secret")
assert DEPLOYMENT and REPLICASET and POD and SERVICE and NAMESPACE and SECRET


def pod_spec() -> dict[str, Any]:
    return {"containers": [{
        "name": "app", "image": "web", "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"port": 80}},
    }]}


def test_a_pod_gets_spec_container_probe_and_admission_defaults() -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": pod_spec()}
    apply_defaults(pod, POD)
    spec = pod["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName",
                                  "terminationGracePeriodSeconds", "securityContext",
                                  "serviceAccountName", "enableServiceLinks")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30,
        "securityContext": {}, "serviceAccountName": "default", "enableServiceLinks": True}
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {}
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
        "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_image_pull_policy_depends_on_the_tag() -> None:
    assert image_pull_policy("nginx") == "Always"
    assert image_pull_policy("nginx:latest") == "Always"
    assert image_pull_policy("localhost:5000/nginx") == "Always"
    assert image_pull_policy("ghcr.io/tp-jupyter/traffic-agent:0.1.0") == "IfNotPresent"
    assert image_pull_policy("nginx@sha256:abcd") == "IfNotPresent"


def test_a_deployment_gets_strategy_limits_and_template_pod_defaults() -> None:
    d: dict[str, Any] = {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec()}}}
    apply_defaults(d, DEPLOYMENT)
    spec = d["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Always"
    assert template["containers"][0]["imagePullPolicy"] == "Always"
    assert "serviceAccountName" not in template  # admission defaults are for pods only


def test_defaults_keep_what_the_client_sent_and_are_idempotent() -> None:
    d: dict[str, Any] = {"metadata": {"name": "d"}, "spec": {
        "replicas": 0, "strategy": {"type": "Recreate"},
        "template": {"spec": {"restartPolicy": "Always", "containers": [
            {"name": "a", "image": "x:1", "imagePullPolicy": "Never"}]}}}}
    apply_defaults(d, DEPLOYMENT)
    assert d["spec"]["replicas"] == 0 and d["spec"]["strategy"] == {"type": "Recreate"}
    assert d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    once = copy.deepcopy(d)
    apply_defaults(d, DEPLOYMENT)
    assert d == once


def test_a_replicaset_gets_one_replica() -> None:
    rs: dict[str, Any] = {"spec": {"template": {"spec": pod_spec()}}}
    apply_defaults(rs, REPLICASET)
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_a_service_gets_type_affinity_ports_and_ip_families() -> None:
    ports = [{"port": 80}, {"port": 81, "targetPort": "x"}]
    svc: dict[str, Any] = {"spec": {"selector": {"a": "b"}, "ports": ports}}
    apply_defaults(svc, SERVICE)
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 81, "protocol": "TCP", "targetPort": "x"}]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"


def test_namespaces_and_secrets_get_their_defaults() -> None:
    ns: dict[str, Any] = {"metadata": {"name": "x"}}
    apply_defaults(ns, NAMESPACE)
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    secret: dict[str, Any] = {"metadata": {"name": "s"}}
    apply_defaults(secret, SECRET)
    assert secret["type"] == "Opaque"
