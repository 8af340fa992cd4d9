"""Deployments, ReplicaSets, pods, scheduling and events against a real API server
and the controllers process. No kubelet runs here: a `FakeKubelet` thread marks pods
Ready through the status subresource, as a kubelet would."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from controllers_testing import Cluster, mark_ready, now, pods_of, rs_of, wait_for, web
from kubernetes import client

pytestmark = pytest.mark.timeout(90)


class FakeKubelet:
    """Marks every pod of a namespace Ready (with an IP) until stopped."""

    def __init__(self, core: client.CoreV1Api, ns: str) -> None:
        self.core, self.ns = core, ns
        self.stop = threading.Event()
        self.ips: dict[str, str] = {}
        self.thread = threading.Thread(target=self._run, name=f"fake-kubelet-{ns}", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                for p in self.core.list_namespaced_pod(self.ns).items:
                    ready = any(c.type == "Ready" and c.status == "True"
                                for c in p.status.conditions or [])
                    if ready or p.metadata.deletion_timestamp:
                        continue
                    ip = self.ips.setdefault(p.metadata.name, f"10.244.0.{len(self.ips) + 2}")
                    mark_ready(self.core, self.ns, p.metadata.name, ip)
            except client.ApiException:
                continue  # a pod vanished under us: next round


@pytest.fixture
def kubelet(core: client.CoreV1Api, namespace: str) -> Iterator[FakeKubelet]:
    k = FakeKubelet(core, namespace)
    k.thread.start()
    yield k
    k.stop.set()
    k.thread.join(5)


def events(core: client.CoreV1Api, ns: str, reason: str) -> list[str]:
    evs = sorted(core.list_namespaced_event(ns).items, key=lambda e: e.metadata.name)
    return [e.message for e in evs if e.reason == reason]


def rollout_status(cluster: Cluster, ns: str, name: str) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed on PATH"
    return subprocess.run([kubectl, "--kubeconfig", str(cluster.kubeconfig), "-n", ns,
                           "rollout", "status", f"deployment/{name}", "--timeout=60s"],
                          capture_output=True, text=True, timeout=75, check=False)


def test_a_deployment_makes_a_hashed_replicaset_whose_pods_it_owns(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    d = apps.create_namespaced_deployment(namespace, web(replicas=2))
    pods = wait_for(lambda: len(pods_of(core, namespace)) == 2 and pods_of(core, namespace),
                    what="2 pods")
    [rs] = rs_of(apps, namespace)
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": h}
    assert rs.spec.template.metadata.labels["pod-template-hash"] == h
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "Deployment", "web", d.metadata.uid, True, True)
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "3"
    for p in pods:
        assert p.metadata.name.startswith(f"web-{h}-")
        assert p.metadata.owner_references[0].uid == rs.metadata.uid
        assert p.metadata.labels["pod-template-hash"] == h
    wait_for(lambda: events(core, namespace, "ScalingReplicaSet"), what="events")
    assert events(core, namespace, "ScalingReplicaSet")[0] == \
        f"Scaled up replica set web-{h} from 0 to 2"
    assert len(wait_for(lambda: len(events(core, namespace, "SuccessfulCreate")) == 2
                        and events(core, namespace, "SuccessfulCreate"))) == 2


def test_pods_without_a_node_stay_pending_as_unschedulable(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, {"metadata": {"name": "lonely"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})

    def unschedulable() -> Any:
        p = core.read_namespaced_pod("lonely", namespace)
        return next((c for c in p.status.conditions or [] if c.type == "PodScheduled"
                     and c.status == "False"), None)

    cond = wait_for(unschedulable, what="PodScheduled=False")
    assert cond.reason == "Unschedulable" and "no nodes available" in cond.message


def test_scaling_up_and_down_changes_the_pods_and_the_status(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str,
        kubelet: FakeKubelet) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=1))

    def status_is(n: int) -> bool:
        s = apps.read_namespaced_deployment("web", namespace).status
        return (s.replicas, s.ready_replicas, s.available_replicas, s.updated_replicas) == (
            n, n, n, n) and len(pods_of(core, namespace)) == n

    wait_for(lambda: status_is(1), what="1 ready replica")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}})
    wait_for(lambda: status_is(4), what="4 ready replicas")
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 2}})
    wait_for(lambda: status_is(2), what="2 ready replicas")
    [rs] = rs_of(apps, namespace)
    assert rs.spec.replicas == 2
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    msgs = events(core, namespace, "ScalingReplicaSet")
    name = rs.metadata.name
    assert f"Scaled up replica set {name} from 1 to 4" in msgs
    assert f"Scaled down replica set {name} from 4 to 2" in msgs
    assert wait_for(lambda: len(events(core, namespace, "SuccessfulDelete")) == 2)


def test_a_rolling_update_respects_surge_and_finishes_rollout_status(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, cluster: Cluster,
        kubelet: FakeKubelet) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=3))
    first = rollout_status(cluster, namespace, "web")
    assert first.returncode == 0, first.stderr
    assert 'deployment "web" successfully rolled out' in first.stdout
    # watch the pod count through the rollout: never above replicas + maxSurge
    peak = [0]
    stop = threading.Event()

    def watch_peak() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], len(pods_of(core, namespace)))

    watcher = threading.Thread(target=watch_peak, name="peak-watcher", daemon=True)
    watcher.start()
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "alpine"}]}}}})
    result = rollout_status(cluster, namespace, "web")
    stop.set()
    watcher.join(5)
    assert result.returncode == 0, result.stderr
    assert 'deployment "web" successfully rolled out' in result.stdout
    assert peak[0] <= 4
    old, new = sorted(rs_of(apps, namespace), key=lambda r: int(
        r.metadata.annotations["deployment.kubernetes.io/revision"]))
    assert (old.spec.replicas, new.spec.replicas) == (0, 3)
    assert new.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    conds = {c.type: c for c in d.status.conditions}
    assert (conds["Progressing"].reason, conds["Progressing"].message) == (
        "NewReplicaSetAvailable", f'ReplicaSet "{new.metadata.name}" has successfully progressed.')
    assert conds["Available"].reason == "MinimumReplicasAvailable"
    assert d.status.observed_generation == d.metadata.generation
    msgs = events(core, namespace, "ScalingReplicaSet")
    assert f"Scaled up replica set {new.metadata.name} from 0 to 1" in msgs
    assert f"Scaled down replica set {old.metadata.name} from 3 to 2" in msgs


def test_recreate_removes_old_pods_before_creating_new_ones(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, cluster: Cluster,
        kubelet: FakeKubelet) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2, strategy={"type": "Recreate"}))
    assert rollout_status(cluster, namespace, "web").returncode == 0
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "alpine"}]}}}})
    result = rollout_status(cluster, namespace, "web")
    assert result.returncode == 0, result.stderr
    msgs = events(core, namespace, "ScalingReplicaSet")
    down = next(i for i, m in enumerate(msgs) if "from 2 to 0" in m)
    up_new = max(i for i, m in enumerate(msgs) if "from 0 to 2" in m)
    assert down < up_new


def test_a_deleted_pod_is_replaced(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, web(replicas=2))
    pods = wait_for(lambda: len(pods_of(core, namespace)) == 2 and pods_of(core, namespace))
    victim = pods[0].metadata.name
    core.delete_namespaced_pod(victim, namespace)
    names = wait_for(lambda: (n := {p.metadata.name for p in pods_of(core, namespace)})
                     and len(n) == 2 and victim not in n and n, what="replacement pod")
    assert victim not in names


def test_orphan_pods_matching_a_replicaset_are_adopted_and_surplus_deleted(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    stray = core.create_namespaced_pod(namespace, {"metadata": {"name": "stray", "labels": {
        "app": "solo"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    # If the controller syncs before its cache holds the stray pod it creates one and
    # then has a surplus; it keeps the older pod, which creationTimestamp (whole
    # seconds) can only tell once the clock has moved on to the next second.
    born = stray.metadata.creation_timestamp
    wait_for(lambda: datetime.datetime.now(datetime.UTC).replace(microsecond=0) > born,
             what="the next second")
    rs = apps.create_namespaced_replica_set(namespace, {
        "metadata": {"name": "solo"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "solo"}},
                 "template": {"metadata": {"labels": {"app": "solo"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})

    def adopted() -> bool:
        p = core.read_namespaced_pod("stray", namespace)
        return bool(p.metadata.owner_references) and \
            p.metadata.owner_references[0].uid == rs.metadata.uid

    wait_for(adopted, what="adoption")
    s = wait_for(lambda: (st := apps.read_namespaced_replica_set("solo", namespace).status)
                 .observed_generation and st)
    assert s.replicas == 1 and len(pods_of(core, namespace)) == 1


def test_the_scheduler_binds_pods_to_the_ready_node(
        core: client.CoreV1Api, namespace: str) -> None:
    node = f"node-{namespace}"
    core.create_node({"metadata": {"name": node}})
    try:
        core.patch_node_status(node, {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}})
        core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}})
        bound = wait_for(lambda: core.read_namespaced_pod("p", namespace).spec.node_name,
                         what="binding")
        assert bound == node
        assert any(f"Successfully assigned {namespace}/p to {node}" == m
                   for m in wait_for(lambda: events(core, namespace, "Scheduled")))
    finally:
        core.delete_node(node)
        core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)


def test_a_rollout_without_ready_pods_exceeds_its_progress_deadline(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str,
        cluster: Cluster) -> None:
    body = web(replicas=1)
    body["spec"]["progressDeadlineSeconds"] = 2
    apps.create_namespaced_deployment(namespace, body)

    def timed_out() -> Any:
        conds = apps.read_namespaced_deployment("web", namespace).status.conditions or []
        return next((c for c in conds if c.type == "Progressing" and c.status == "False"), None)

    cond = wait_for(timed_out, timeout=20, what="ProgressDeadlineExceeded")
    assert cond.reason == "ProgressDeadlineExceeded"
    assert cond.message.endswith("has timed out progressing.")
    result = rollout_status(cluster, namespace, "web")
    assert result.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in result.stderr
