"""Injection of the traffic-agent into a Deployment's pod template, and exact restoration."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from tp_cluster import injector
from tp_cluster.injector import InjectError, inject, interceptable, restore

pytestmark = pytest.mark.timeout(10)
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
IMAGE = "ghcr.io/tp-jupyter/traffic-agent:0.1.0"
MANAGER = injector.manager_address("ambassador")


def deployment(port_name: str | None = "http", container_port: int = 8080) -> dict[str, Any]:
    port: dict[str, Any] = {"containerPort": container_port, "protocol": "TCP"}
    if port_name:
        port["name"] = port_name
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app", "image": "demo-web:1", "ports": [port],
                    "env": [{"name": "COLOR", "value": "blue"},
                            {"name": "GREETING", "value": "hello $(COLOR) $$(COLOR) $(HOME)"},
                            {"name": "SECRET", "valueFrom": {"secretKeyRef": {
                                "name": "s", "key": "k"}}},
                            {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                                "resource": "limits.memory"}}}],
                    "envFrom": [{"configMapRef": {"name": "cm"}},
                                {"prefix": "DB_", "secretRef": {"name": "db"}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/var/data",
                                      "readOnly": True}],
                }], "volumes": [{"name": "data", "emptyDir": {}}]},
            },
        },
    }


def service(target: str | int = "http", ports: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": ports or [
            {"name": "http", "port": 80, "targetPort": target, "protocol": "TCP"}]},
    }


def agent_of(d: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in d["spec"]["template"]["spec"]["containers"]
                if c["name"] == "traffic-agent")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_symbolic_target_port_moves_its_name_to_the_agent_and_leaves_the_service() -> None:
    original = deployment()
    patched, new_service = inject(original, service(), "http", IMAGE, MANAGER)
    assert new_service is None
    app, agent = patched["spec"]["template"]["spec"]["containers"]
    assert app["ports"] == [{"containerPort": 8080, "protocol": "TCP", "name": "tm-http"}]
    assert agent["ports"] == [{"name": "http", "containerPort": 9900, "protocol": "TCP"}]
    assert agent["image"] == IMAGE
    assert agent["readinessProbe"]["tcpSocket"] == {"port": 9900}
    env = env_of(agent)
    assert json.loads(env["APP_PORTS"]) == [{
        "name": "http", "port": 9900, "app_port": 8080, "protocol": "TCP",
        "service_ports": [{"name": "http", "port": 80}]}]
    assert env["MANAGER_ADDRESS"] == "traffic-manager.ambassador:8081"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert (env["AGENT_NAME"], env["APP_CONTAINER"]) == ("web", "app")
    assert original == deployment(), "inject must not modify its input"


def test_the_app_environment_is_copied_under_a_prefix_with_references_rewritten() -> None:
    agent = agent_of(inject(deployment(), service(), "http", IMAGE, MANAGER)[0])
    env = env_of(agent)
    assert env["TP_APP_ENV_COLOR"] == "blue"
    assert env["TP_APP_ENV_GREETING"] == "hello $(TP_APP_ENV_COLOR) $$(COLOR) $(HOME)"
    assert env["TP_APP_ENV_SECRET"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert env["TP_APP_ENV_MEM"]["resourceFieldRef"]["containerName"] == "app"
    assert agent["envFrom"] == [{"configMapRef": {"name": "cm"}, "prefix": "TP_APP_ENV_"},
                                {"prefix": "TP_APP_ENV_DB_", "secretRef": {"name": "db"}}]
    assert agent["volumeMounts"] == [{"name": "data", "mountPath": "/tp-mounts/var/data",
                                      "readOnly": True},
                                     {"name": "tp-agent-tmp", "mountPath": "/tp-agent-tmp"},
                                     {"name": "tp-agent-token", "readOnly": True,
                                      "mountPath": "/tp-mounts" + SA}]
    assert json.loads(env["APP_MOUNTS"]) == [
        {"name": "data", "mountPath": "/var/data", "readOnly": True},
        {"name": "tp-agent-token", "mountPath": SA, "readOnly": True}]


def test_a_numeric_target_port_is_rewritten_on_the_service_and_kept_in_an_annotation() -> None:
    patched, new_service = inject(deployment(port_name=None), service(8080), 80, IMAGE, MANAGER)
    assert new_service is not None
    assert new_service["spec"]["ports"][0]["targetPort"] == "tp-8080"
    assert json.loads(new_service["metadata"]["annotations"][
        injector.ANNOTATION_SERVICE_PORTS]) == service(8080)["spec"]["ports"]
    app, agent = patched["spec"]["template"]["spec"]["containers"]
    assert app["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert agent["ports"] == [{"name": "tp-8080", "containerPort": 9900, "protocol": "TCP"}]


@pytest.mark.parametrize("target", ["http", 8080])
def test_restore_gives_back_the_deployment_and_service_field_by_field(target: Any) -> None:
    original_d = deployment(port_name="http")
    original_d["metadata"]["annotations"] = {"keep": "me"}
    original_s = service(target)
    patched, new_service = inject(original_d, original_s, "http", IMAGE, MANAGER)
    restored_d, restored_s = restore(patched, new_service or original_s)
    assert restored_d == original_d
    assert (restored_s or original_s) == original_s
    if target == 8080:
        assert restored_s == original_s


def test_inject_is_idempotent_and_refreshes_the_image() -> None:
    d, s = deployment(port_name=None), service(8080)
    once_d, once_s = inject(d, s, "", IMAGE, MANAGER)
    assert once_s is not None
    twice_d, twice_s = inject(once_d, once_s, "", IMAGE, MANAGER)
    assert (twice_d, twice_s) == (once_d, None)
    newer_d, _ = inject(once_d, once_s, "", IMAGE + "-new", MANAGER)
    assert agent_of(newer_d)["image"] == IMAGE + "-new"
    assert restore(newer_d, once_s) == (d, s)


def test_agent_ports_avoid_ports_the_pod_already_uses_and_each_target_gets_one() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "admin", "containerPort": 9900})
    s = service(ports=[{"name": "http", "port": 80, "targetPort": "http"},
                       {"name": "alt", "port": 8000, "targetPort": "http"},
                       {"name": "adm", "port": 9000, "targetPort": 9900},
                       {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}])
    patched, new_service = inject(d, s, "alt", IMAGE, MANAGER)
    ports = json.loads(env_of(agent_of(patched))["APP_PORTS"])
    assert [(p["name"], p["port"], p["app_port"], [sp["port"] for sp in p["service_ports"]])
            for p in ports] == [("http", 9901, 8080, [80, 8000]), ("tp-9900", 9902, 9900, [9000])]
    assert new_service is not None
    assert [p["targetPort"] for p in new_service["spec"]["ports"]] == [
        "http", "http", "tp-9900", 53]


@pytest.mark.parametrize(("svc_port", "message"), [
    ("grpc", "has no TCP port 'grpc' (it has http/80): choose one"),
    ("", None),
])
def test_an_unknown_service_port_is_refused_with_the_ports_it_has(
        svc_port: str, message: str | None) -> None:
    if message is None:
        inject(deployment(), service(), svc_port, IMAGE, MANAGER)
        return
    with pytest.raises(InjectError, match=re.escape(message)):
        inject(deployment(), service(), svc_port, IMAGE, MANAGER)


def test_a_service_naming_a_port_no_container_declares_is_refused() -> None:
    with pytest.raises(InjectError, match="targets port name 'web', which no container"):
        inject(deployment(), service("web"), "http", IMAGE, MANAGER)


def test_deployments_replicasets_and_statefulsets_are_interceptable_other_kinds_say_why_not(
        ) -> None:
    assert interceptable("Deployment", deployment(), [service()]) == (True, "")
    for kind in ("ReplicaSet", "StatefulSet"):
        assert interceptable(kind, {**deployment(), "kind": kind}, [service()]) == (True, "")
    rs = {"metadata": {"name": "web-abc", "ownerReferences": [
        {"kind": "Deployment", "name": "web"}]}}
    assert interceptable("ReplicaSet", rs) == (
        False, "not interceptable: ReplicaSet web-abc belongs to Deployment web; intercept "
               "the Deployment")
    ok, reason = interceptable("DaemonSet", {"metadata": {"name": "db"}})
    assert not ok and reason.startswith("not interceptable: DaemonSet is not a workload")
    other = service()
    other["spec"]["selector"] = {"app": "other"}
    ok, reason = interceptable("Deployment", deployment(), [other])
    assert (ok, reason) == (False, "not interceptable: no Service selects the pods of web; "
                                   "create a Service for it")
    ok, reason = interceptable("Deployment", deployment(), [service("nope")])
    assert not ok and "targets port name 'nope'" in reason


def test_an_injected_deployment_is_recognised_and_restore_of_a_plain_one_is_a_no_op() -> None:
    d = deployment()
    patched, _ = inject(d, service(), "http", IMAGE, MANAGER)
    assert injector.agent_installed(patched) and not injector.agent_installed(d)
    assert restore(copy.deepcopy(d), None) == (d, None)
    assert interceptable("Deployment", patched, [service()]) == (True, "")


def probed(d: dict[str, Any], port: str | int = "http") -> dict[str, Any]:
    """`d` with every probe kind and both lifecycle hooks naming `port`."""
    app = d["spec"]["template"]["spec"]["containers"][0]
    app["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 2}
    app["livenessProbe"] = {"tcpSocket": {"port": port}}
    app["startupProbe"] = {"httpGet": {"path": "/up", "port": port, "scheme": "HTTP"}}
    app["lifecycle"] = {"postStart": {"httpGet": {"path": "/warm", "port": port}},
                        "preStop": {"tcpSocket": {"port": port}}}
    return d


def handler_ports(container: dict[str, Any]) -> list[Any]:
    handlers = [container.get(p) for p in ("readinessProbe", "livenessProbe", "startupProbe")]
    handlers += list((container.get("lifecycle") or {}).values())
    return [h.get("httpGet", h.get("tcpSocket"))["port"] for h in handlers if h]


def test_probes_and_hooks_naming_the_taken_over_port_follow_its_new_name() -> None:
    patched, _ = inject(probed(deployment()), service(), "http", IMAGE, MANAGER)
    app = patched["spec"]["template"]["spec"]["containers"][0]
    assert handler_ports(app) == ["tm-http"] * 5
    assert app["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": "tm-http"},
                                     "periodSeconds": 2}


def test_every_probe_of_the_injected_app_still_reaches_the_app_port_as_a_kubelet_resolves_it(
        ) -> None:
    from tp_sandbox.node.probes import resolve_port

    patched, _ = inject(probed(deployment(container_port=3000)), service(), "http", IMAGE,
                        MANAGER)
    app, agent = patched["spec"]["template"]["spec"]["containers"]
    assert [resolve_port(p, app) for p in handler_ports(app)] == [3000] * 5
    assert resolve_port(agent["readinessProbe"]["tcpSocket"]["port"], agent) == 9900


@pytest.mark.parametrize("port", [8080, "8080", "metrics"])
def test_probes_on_a_number_or_on_a_port_that_stays_are_left_alone(port: Any) -> None:
    d = probed(deployment(), port)
    d["spec"]["template"]["spec"]["containers"][0]["ports"].append(
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"})
    patched, _ = inject(d, service(), "http", IMAGE, MANAGER)
    assert handler_ports(patched["spec"]["template"]["spec"]["containers"][0]) == [port] * 5


def test_a_numeric_takeover_leaves_the_probes_unchanged() -> None:
    d = probed(deployment(), "http")
    patched, _ = inject(d, service(8080), "http", IMAGE, MANAGER)
    assert handler_ports(patched["spec"]["template"]["spec"]["containers"][0]) == ["http"] * 5


def test_probes_of_another_container_are_left_alone() -> None:
    d = probed(deployment(), "http")
    sidecar = probed(deployment("admin", 7000), "admin")["spec"]["template"]["spec"][
        "containers"][0]
    sidecar["name"] = "sidecar"
    d["spec"]["template"]["spec"]["containers"].append(sidecar)
    patched, _ = inject(d, service(), "http", IMAGE, MANAGER)
    app, sidecar, _agent = patched["spec"]["template"]["spec"]["containers"]
    assert handler_ports(app) == ["tm-http"] * 5
    assert handler_ports(sidecar) == ["admin"] * 5


@pytest.mark.parametrize("target", ["http", 8080])
def test_restore_gives_back_probes_naming_the_port_field_by_field(target: Any) -> None:
    original_d, original_s = probed(deployment()), service(target)
    patched, new_service = inject(original_d, original_s, "http", IMAGE, MANAGER)
    again, _ = inject(patched, new_service or original_s, "http", IMAGE, MANAGER)
    assert again == patched
    restored_d, restored_s = restore(again, new_service or original_s)
    assert restored_d == original_d
    assert restored_d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}
    assert (restored_s or original_s) == original_s


def test_the_demo_manifest_probe_names_the_port_and_survives_injection() -> None:
    import tp_sandbox
    import yaml

    docs = list(yaml.safe_load_all(
        (Path(tp_sandbox.__file__).parent / "manifests" / "demo.yaml").read_text()))
    d, s = (next(x for x in docs if x["kind"] == kind
                 and x["metadata"]["name"] == "dataprocessingservice")
            for kind in ("Deployment", "Service"))
    app = d["spec"]["template"]["spec"]["containers"][0]
    assert app["readinessProbe"]["httpGet"]["port"] == "http"
    patched, new_service = inject(d, s, "http", IMAGE, MANAGER)
    assert new_service is None
    app = patched["spec"]["template"]["spec"]["containers"][0]
    assert app["readinessProbe"]["httpGet"]["port"] == "tm-http"
    assert restore(patched, s) == (d, None)
