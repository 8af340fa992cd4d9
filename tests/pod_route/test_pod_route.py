"""`tp connect` by the port-forward: connections to Services and pods go as one pod
port-forward each (`tp_daemon.podroute`, the manager's `ResolveDial`), with the Tunnel
as the fallback. End to end in the sandbox's laptops (root).

The daemon's status counts both kinds of connection (`StatusInfo.pod_route_connections`,
`tunnel_connections`), which is how these tests see which way a request went.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from durability_testing import SVC, local_app
from sandbox_testing import Laptop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

TP = f"{sys.executable} -m tp_jupyter.cli"
CURL = "curl -sS --max-time 8"
MANAGER_NS = "ambassador"


def counters(lap: Laptop) -> tuple[int, int]:
    """(connections by pod port-forward, connections by Tunnel), as `tp status` says."""
    proc = lap.run(f"{TP} status --format json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    path = json.loads(proc.stdout)["data_path"]
    return int(path["pod_route_connections"]), int(path["tunnel_connections"])


def color(lap: Laptop, namespace: str, header: str = "") -> str:
    proc = lap.run(f"{CURL} {header} http://{SVC}.{namespace}:3000/color")
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def demo(sandbox: Any, core: Any) -> Iterator[str]:
    from tp_sandbox import lifecycle

    if not sandbox.has_node:
        pytest.skip("the sandbox runs without a node")
    namespace = f"podroute-{secrets.token_hex(3)}"
    lifecycle.demo(sandbox.instance, namespace=namespace, progress=lambda _: None)
    yield namespace
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def alice(sandbox: Any, demo: str) -> Iterator[Laptop]:
    """Laptop 1 (alice, namespace `edit`) connected by the API server's port-forward."""
    lap = Laptop(sandbox, 1)
    proc = lap.run(f"{TP} connect --manager-address port-forward", timeout=180)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: lap.run(f"{CURL} http://{SVC}.{demo}:3000/color").returncode == 0, 60,
             "the demo service through the connection")
    yield lap
    lap.run(f"{TP} quit", timeout=30)


def test_a_request_to_a_service_goes_over_a_pod_port_forward_not_a_tunnel(
        alice: Laptop, demo: str) -> None:
    pods_before, tunnels_before = counters(alice)
    for _ in range(3):
        assert color(alice, demo) == "green"
    pods_after, tunnels_after = counters(alice)
    assert pods_after - pods_before == 3
    assert tunnels_after == tunnels_before


def test_a_pod_address_goes_over_a_port_forward_to_that_pod(
        alice: Laptop, demo: str, core: Any) -> None:
    pod = next(p for p in core.list_namespaced_pod(demo).items
               if p.metadata.name.startswith(SVC) and p.status.pod_ip)
    pods_before, _ = counters(alice)
    proc = alice.run(f"{CURL} http://{pod.status.pod_ip}:3000/color")
    assert proc.returncode == 0 and json.loads(proc.stdout) == "green", proc.stderr
    assert counters(alice)[0] == pods_before + 1


CONCURRENT = r"""
import http.client, json, sys, threading
url_host, n = sys.argv[1], int(sys.argv[2])
barrier, answers = threading.Barrier(n), []
def one():
    c = http.client.HTTPConnection(url_host, 3000, timeout=30)
    c.connect()
    barrier.wait()  # every connection is open at once
    c.request("GET", "/color")
    answers.append(json.loads(c.getresponse().read()))
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(answers))
"""


def test_a_hundred_and_fifty_connections_open_at_once_are_all_answered(
        alice: Laptop, demo: str) -> None:
    pods_before, _ = counters(alice)
    proc = alice.run([sys.executable, "-c", CONCURRENT, f"{SVC}.{demo}", "150"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["green"] * 150
    assert counters(alice)[0] >= pods_before + 150


def test_a_service_whose_pods_change_is_still_reached(
        alice: Laptop, demo: str, apps: Any, core: Any) -> None:
    assert color(alice, demo) == "green"  # a route to one of today's pods is cached
    old = {p.metadata.name for p in core.list_namespaced_pod(demo).items
           if p.metadata.name.startswith(SVC)}
    apps.patch_namespaced_deployment(SVC, demo, {"spec": {"replicas": 2, "template": {
        "metadata": {"annotations": {"podroute-test/restarted": str(time.time())}}}}})

    def rolled_out() -> bool:
        pods = [p for p in core.list_namespaced_pod(demo).items
                if p.metadata.name.startswith(SVC)]
        return (len(pods) == 2 and not old & {p.metadata.name for p in pods}
                and all(p.status.phase == "Running" for p in pods))

    wait_for(rolled_out, 120, "the rollout to two new pods, the old pod gone")
    pods_before, _ = counters(alice)
    # every request is answered, also the first ones after the old pod went away
    assert [color(alice, demo) for _ in range(8)] == ["green"] * 8
    assert counters(alice)[0] > pods_before


def test_the_kubernetes_service_still_works_through_the_tunnel(alice: Laptop) -> None:
    pods_before, tunnels_before = counters(alice)
    proc = alice.run(f"{CURL} -k -o /dev/null -w '%{{http_code}}' "
                     "https://kubernetes.default/api")
    assert proc.stdout == "401", proc.stderr  # the API server itself answered, anonymously
    pods_after, tunnels_after = counters(alice)
    assert pods_after == pods_before
    assert tunnels_after == tunnels_before + 1


@pytest.fixture
def no_port_forward_user(sandbox: Any, core: Any, kube: Any, demo: str
                         ) -> Iterator[tuple[Laptop, str]]:
    """Laptop 2 with a kubeconfig whose ServiceAccount may port-forward to the
    traffic-manager only: no pods/portforward in the demo namespace."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube)
    name = f"nopf-{secrets.token_hex(3)}"
    core.create_namespaced_service_account(demo, {"metadata": {"name": name}})
    rbac.create_namespaced_role(MANAGER_NS, {
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["pods", "services", "configmaps"],
                   "verbs": ["get", "list", "watch"]},
                  {"apiGroups": [""], "resources": ["pods/portforward"],
                   "verbs": ["get", "create"]}]})
    rbac.create_namespaced_role_binding(MANAGER_NS, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": demo}]})
    token = core.create_namespaced_service_account_token(
        name, demo, {"spec": {"expirationSeconds": 3600}}).status.token
    lap = Laptop(sandbox, 2)
    config = yaml.safe_load(lap.kubeconfig.read_text(encoding="utf-8"))
    context = config["contexts"][0]
    context["context"]["namespace"] = demo
    user = context["context"]["user"]
    for entry in config["users"]:
        if entry["name"] == user:
            entry["user"] = {"token": token}
    config["current-context"] = context["name"]
    path = lap.kubeconfig.with_name(f"kubeconfig-{name}")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    try:
        yield lap, str(path)
    finally:
        lap.run(f"{TP} quit", timeout=30)
        path.unlink()
        rbac.delete_namespaced_role_binding(name, MANAGER_NS)
        rbac.delete_namespaced_role(name, MANAGER_NS)


def test_a_user_without_pods_portforward_rights_still_reaches_services_by_the_tunnel(
        no_port_forward_user: tuple[Laptop, str], demo: str) -> None:
    lap, kubeconfig = no_port_forward_user
    proc = lap.run(f"{TP} connect --kubeconfig {kubeconfig} --manager-address port-forward",
                   timeout=180)
    assert proc.returncode == 0, proc.stderr
    answers = [color(lap, demo) for _ in range(3)]
    assert answers == ["green"] * 3
    pods, tunnels = counters(lap)
    assert pods == 0 and tunnels >= 3


def test_a_personal_intercept_routes_a_matching_request_through_the_service_to_the_laptop(
        alice: Laptop, demo: str) -> None:
    app = local_app(alice, "purple")
    try:
        made = alice.run(f"{TP} intercept {SVC} -n {demo} -p 3000 --mount false "
                         "--http-match x-dev=alice", timeout=180)
        assert made.returncode == 0, made.stderr
        pods_before, _ = counters(alice)
        # the agent's rollout replaced the pods: the first request may find a stale route
        wait_for(lambda: color(alice, demo, "-H 'x-dev: alice'") == "purple", 30,
                 "the matching request at the laptop's app",
                 ignore=lambda e: isinstance(e, (AssertionError, ValueError)))
        for _ in range(3):
            assert color(alice, demo, "-H 'x-dev: alice'") == "purple"
            assert color(alice, demo, "-H 'x-dev: bob'") == "green"
        assert counters(alice)[0] >= pods_before + 6
    finally:
        alice.run(f"{TP} leave {SVC}", timeout=60)
        app.terminate()
        app.wait(timeout=10)
