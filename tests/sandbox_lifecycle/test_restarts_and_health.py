"""A sandbox that survives its own restarts and says when it is unhealthy, and its
named users (alice, bob) with `edit`, not `system:masters`.

One instance of its own (the tests kill and stop its processes), started with short
heartbeats through `$TP_SETTINGS` so that staleness shows within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from sandbox_testing import IS_ROOT, _module_runnable, unique_name, wait_for
from tp_sandbox import kubeconfig as kc
from tp_sandbox import lifecycle
from tp_sandbox.paths import Instance

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

TP = [sys.executable, "-m", "tp_jupyter.cli"]
WATCH_HISTORY = 400
SETTINGS = {
    "node": {"status_interval": 1.0},
    "controllers": {"heartbeat_interval": 0.5},
    "sandbox": {"node_stale_after": 4.0, "controllers_stale_after": 3.0, "health_grace": 3.0},
    "apiserver": {"watch_history": WATCH_HISTORY},
}


class Own:
    def __init__(self, instance: Instance, settings: Path) -> None:
        self.instance = instance
        self.settings = settings

    def api(self, user: str | None = None) -> client.ApiClient:
        path = (self.instance.kubeconfig if user is None
                else lifecycle.kubeconfig_path(self.instance, None, user))
        return config.new_client_from_config(str(path))

    def pid(self, proc: str) -> int:
        return int((self.instance.run_dir / f"{proc}.pid").read_text())

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*TP, "sandbox", "status", "--name", self.instance.name],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "TP_SETTINGS": str(self.settings)})


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Own]:
    if not IS_ROOT:
        pytest.skip("the sandbox needs root (network namespaces)")
    if not _module_runnable("tp_sandbox.node"):
        pytest.skip("the node is not built yet")
    settings = tmp_path_factory.mktemp("settings") / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    instance = Instance(unique_name("r"))
    before = os.environ.get("TP_SETTINGS")
    os.environ["TP_SETTINGS"] = str(settings)  # inherited by the supervisor and its children
    try:
        lifecycle.up(instance, laptops=2,  # laptop 1 is alice, laptop 2 bob by default
                     progress=lambda line: print(f"[{instance.name}] {line}", file=sys.stderr))
    finally:
        if before is None:
            os.environ.pop("TP_SETTINGS", None)
        else:
            os.environ["TP_SETTINGS"] = before
    try:
        yield Own(instance, settings)
    finally:
        lifecycle.down(instance, keep_logs=True)


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox",
                            "command": ["sh", "-c", "sleep 3600"]}]}}}}


def _running(core: client.CoreV1Api, ns: str, app: str, n: int) -> list[Any]:
    pods = [p for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    return pods if len(pods) == n else []


def _container_pids(own: Own, uid: str) -> list[int]:
    record = json.loads((own.instance.state_dir / "pods" / uid / "pod.json").read_text())
    return [int(pid) for pid, _start in (record.get("pids") or {}).values()]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_an_api_server_sigkill_keeps_objects_watches_node_and_running_pods(own: Own) -> None:
    core = client.CoreV1Api(own.api())
    apps = client.AppsV1Api(own.api())
    ns = "keep"
    core.create_namespace({"metadata": {"name": ns}})
    dep = apps.create_namespaced_deployment(ns, _deployment("web", 2))
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    pods = wait_for(lambda: _running(core, ns, "web", 2), 90, "2 running pods")
    assert isinstance(pods, list)
    pids = {p.metadata.uid: _container_pids(own, p.metadata.uid) for p in pods}
    assert all(pids.values())
    old_rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "churn"}})
    for i in range(WATCH_HISTORY + 20):
        core.patch_namespaced_config_map("churn", ns, {"data": {"i": str(i)}})
    recent_rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "before-kill"}})
    rs = apps.list_namespaced_replica_set(ns).items
    node_uid = core.read_node("sandbox-node").metadata.uid

    api_pid = own.pid("apiserver")
    killed, killed_at = time.monotonic(), time.time()
    os.kill(api_pid, signal.SIGKILL)
    wait_for(lambda: "apiserver restarting" in lifecycle.status(own.instance).problems, 10,
             "status to say the API server is restarting")
    port = int(json.loads(own.instance.state_file.read_text())["api_port"])
    wait_for(lambda: kc.readyz(own.instance, port), 30, "the API server to answer again")
    api_back = time.monotonic() - killed
    assert own.pid("apiserver") != api_pid

    core = client.CoreV1Api(own.api())
    apps = client.AppsV1Api(own.api())
    # Every object is still there, with the same UID and resourceVersion.
    after_dep = apps.read_namespaced_deployment("web", ns)
    assert after_dep.metadata.uid == dep.metadata.uid
    assert core.read_namespaced_service("web", ns).metadata.uid == svc.metadata.uid
    assert [r.metadata.uid for r in apps.list_namespaced_replica_set(ns).items] == [
        r.metadata.uid for r in rs]
    assert core.read_node("sandbox-node").metadata.uid == node_uid
    # A watch from a recent RV continues; one older than the history gets 410.
    events = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                   resource_version=recent_rv, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        break
    assert events == [("ADDED", "before-kill")]
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, ns,
                                  resource_version=old_rv, timeout_seconds=2))
    assert err.value.status == 410
    # The node beats again and the status is healthy; the pods never stopped.
    wait_for(lambda: _beat_after(core, killed_at), 30, "a node heartbeat after the restart")
    node_back = time.monotonic() - killed
    wait_for(lambda: own.status().returncode == 0, 30, "a healthy status")
    now = _running(core, ns, "web", 2)
    assert {p.metadata.uid for p in now} == set(pids)
    for uid, before in pids.items():
        assert _container_pids(own, uid) == before
        assert all(_alive(pid) for pid in before), f"pod {uid} processes died"
    # RVs keep increasing and the controllers act on new work.
    fresh = core.create_namespaced_config_map(ns, {"metadata": {"name": "after"}})
    assert int(fresh.metadata.resource_version) > int(recent_rv)
    apps.create_namespaced_deployment(ns, _deployment("second", 1))
    wait_for(lambda: _running(core, ns, "second", 1), 60, "the new deployment's pod")
    pod_back = time.monotonic() - killed
    print(f"\nkill -9 apiserver -> API answers {api_back:.1f}s, node Ready (fresh "
          f"heartbeat) {node_back:.1f}s, new deployment's pod Running {pod_back:.1f}s")


def _beat_after(core: client.CoreV1Api, when: float) -> bool:
    node = core.read_node("sandbox-node")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    return bool(ready.status == "True" and ready.last_heartbeat_time.timestamp() > when)


def _problems_line(own: Own) -> str:
    proc = own.status()
    return proc.stdout.splitlines()[0] if proc.returncode == 1 and proc.stdout else ""


def test_status_says_node_not_ready_while_the_node_is_stopped(own: Own) -> None:
    wait_for(lambda: own.status().returncode == 0, 30, "a healthy status")
    pid = own.pid("node")
    os.kill(pid, signal.SIGSTOP)
    try:
        line = wait_for(lambda: "NotReady (last heartbeat" in _problems_line(own)
                        and _problems_line(own), 30, "status to see the stopped node")
        assert isinstance(line, str) and line.startswith(
            f"sandbox {own.instance.name}: UNHEALTHY: node sandbox-node NotReady")
        published = json.loads((own.instance.run_dir / "status.json").read_text())
        assert next(c for c in published["children"] if c["name"] == "node")["stalled"]
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: own.status().returncode == 0, 30, "a healthy status again")
    assert own.pid("node") == pid  # reported, not restarted


def test_status_says_controllers_stalled_while_they_are_stopped(own: Own) -> None:
    wait_for(lambda: own.status().returncode == 0, 30, "a healthy status")
    pid = own.pid("controllers")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "controllers stalled (last heartbeat" in _problems_line(own), 30,
                 "status to see the stopped controllers")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: own.status().returncode == 0, 30, "a healthy status again")


def test_alice_edits_namespaces_but_is_no_cluster_admin(own: Own) -> None:
    admin = client.CoreV1Api(own.api())
    admin.create_namespace({"metadata": {"name": "team"}})
    alice = own.api("alice")
    me = client.AuthenticationV1Api(alice).create_self_subject_review({}).status.user_info
    assert (me.username, me.groups) == ("alice", ["developers", "system:authenticated"])
    client.AppsV1Api(alice).create_namespaced_deployment("team", _deployment("mine", 0))
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(alice).create_namespace({"metadata": {"name": "alices"}})
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        client.RbacAuthorizationV1Api(alice).create_cluster_role_binding({
            "metadata": {"name": "escalate"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "alice"}]})
    assert err.value.status == 403

    authz = client.AuthorizationV1Api(own.api())
    groups = ["developers", "system:authenticated"]

    def sar(verb: str, resource: str, namespace: str = "") -> Any:
        return authz.create_subject_access_review({"spec": {
            "user": "alice", "groups": groups, "resourceAttributes": {
                "verb": verb, "resource": resource, "namespace": namespace}}}).status

    allowed = sar("create", "pods", "team")
    assert allowed.allowed is True and kc.DEVELOPERS_BINDING in allowed.reason
    assert sar("create", "nodes").allowed is False

    token = kc.ensure_user_token(own.instance, "alice")
    st = client.AuthenticationV1Api(own.api()).create_token_review(
        {"spec": {"token": token}}).status
    assert st.authenticated is True and st.user.username == "alice"


def test_each_laptop_acts_as_its_user_and_every_user_has_a_kubeconfig(own: Own) -> None:
    for k, user in ((1, "alice"), (2, "bob")):
        proc = subprocess.run([*TP, "sandbox", "kubeconfig", "--name", own.instance.name,
                               "--laptop", str(k)], capture_output=True, text=True,
                              timeout=60, check=True)
        doc = Path(proc.stdout.strip().splitlines()[-1]).read_text()
        assert f"current-context: {user}@tp-sandbox-{own.instance.name}" in doc
        assert "server: https://172.30.0.1:6443" in doc
    host = subprocess.run([*TP, "sandbox", "kubeconfig", "--name", own.instance.name,
                           "--user", "bob"], capture_output=True, text=True, timeout=60,
                          check=True)
    bob = client.AuthenticationV1Api(config.new_client_from_config(
        host.stdout.strip().splitlines()[-1]))
    assert bob.create_self_subject_review({}).status.user_info.username == "bob"
    bad = subprocess.run([*TP, "sandbox", "kubeconfig", "--name", own.instance.name,
                          "--user", "mallory"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("tp: unknown user 'mallory': the sandbox's users "
                                         "are alice, bob, carol, ")
    assert bad.stderr.strip().endswith(" and admin (--admin)")
    # Only the admin is system:masters; a laptop has the admin's kubeconfig beside its own.
    tokens = json.loads(own.instance.tokens_file.read_text())
    masters = [t for t, who in tokens.items() if "system:masters" in who["groups"]]
    assert [who["user"] for t, who in tokens.items() if t in masters] == ["admin"]
    admin = subprocess.run([*TP, "sandbox", "kubeconfig", "--name", own.instance.name,
                            "--laptop", "2", "--admin"], capture_output=True, text=True,
                           timeout=60, check=True).stdout.strip()
    assert admin == str(own.instance.laptop_dir(2) / "kubeconfig-admin")
    doc = Path(admin).read_text()
    assert f"current-context: tp-sandbox-{own.instance.name}" in doc
    assert "server: https://172.30.0.1:6443" in doc
