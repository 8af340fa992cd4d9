"""StatefulSets, Jobs and DaemonSets with the official client against a real API server
and the controllers process. No kubelet runs here: the test plays it, marking pods Ready
or Succeeded through the status subresource, so the ordering is observable step by step.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from controllers_testing import mark_ready, pods_of, wait_for
from kubernetes import client
from tp_sandbox.eventlog import Aggregator

pytestmark = pytest.mark.timeout(90)


def sts(name: str = "db", replicas: int = 2, policy: str = "OrderedReady",
        image: str = "redis") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name,
                     "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def names(core: client.CoreV1Api, ns: str) -> list[str]:
    return sorted(p.metadata.name for p in pods_of(core, ns))


def test_ordered_ready_creates_the_next_ordinal_only_once_the_previous_is_ready(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    created = apps.create_namespaced_stateful_set(namespace, sts(replicas=3))
    assert created.spec.update_strategy.type == "RollingUpdate"
    assert created.spec.pod_management_policy == "OrderedReady"
    wait_for(lambda: names(core, namespace) == ["db-0"], what="db-0 alone")
    pod = core.read_namespaced_pod("db-0", namespace)
    assert (pod.spec.hostname, pod.spec.subdomain) == ("db-0", "db")
    assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert pod.metadata.labels["apps.kubernetes.io/pod-index"] == "0"
    # nothing more while db-0 is not Ready
    with pytest.raises(TimeoutError):
        wait_for(lambda: len(names(core, namespace)) > 1, timeout=1.5, what="a second pod")
    mark_ready(core, namespace, "db-0", "10.244.0.2")
    wait_for(lambda: names(core, namespace) == ["db-0", "db-1"], what="db-1")
    mark_ready(core, namespace, "db-1", "10.244.0.3")
    wait_for(lambda: names(core, namespace) == ["db-0", "db-1", "db-2"], what="db-2")
    mark_ready(core, namespace, "db-2", "10.244.0.4")
    status = wait_for(lambda: (s := apps.read_namespaced_stateful_set("db", namespace).status)
                      .ready_replicas == 3 and s, what="3 ready")
    assert status.current_revision == status.update_revision
    assert status.updated_replicas == 3 and status.observed_generation == 1


def test_parallel_pods_start_together_and_scale_down_from_the_highest_ordinal(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_stateful_set(namespace, sts(replicas=3, policy="Parallel"))
    wait_for(lambda: names(core, namespace) == ["db-0", "db-1", "db-2"], what="3 pods at once")
    scale = apps.patch_namespaced_stateful_set_scale("db", namespace, {"spec": {"replicas": 1}})
    assert scale.spec.replicas == 1
    wait_for(lambda: names(core, namespace) == ["db-0"], what="db-1 and db-2 removed")
    read = apps.read_namespaced_stateful_set_scale("db", namespace)
    assert read.spec.replicas == 1 and read.status.selector == "app=db"


def test_deleting_a_statefulset_collects_its_pods_and_revisions(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_stateful_set(namespace, sts(replicas=2, policy="Parallel"))
    wait_for(lambda: len(names(core, namespace)) == 2, what="2 pods")
    revs = wait_for(lambda: apps.list_namespaced_controller_revision(namespace).items,
                    what="a ControllerRevision")
    assert revs[0].revision == 1 and revs[0].metadata.owner_references[0].kind == "StatefulSet"
    apps.delete_namespaced_stateful_set("db", namespace, propagation_policy="Background")
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, what="pods collected")
    wait_for(lambda: not apps.list_namespaced_controller_revision(namespace).items,
             what="revisions collected")


def test_a_job_counts_succeeded_pods_up_to_its_completions(
        core: client.CoreV1Api, kube: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
    job = batch.create_namespaced_job(namespace, {
        "metadata": {"name": "work"},
        "spec": {"completions": 2, "parallelism": 1, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    uid = job.metadata.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert job.spec.template.metadata.labels["job-name"] == "work"
    assert job.spec.backoff_limit == 6
    for _ in range(2):
        pod = wait_for(lambda: [p for p in pods_of(core, namespace)
                                if (p.status.phase or "Pending") == "Pending"],
                       what="a pending job pod")[0]
        assert len([p for p in pods_of(core, namespace)
                    if p.status.phase not in ("Succeeded",)]) == 1  # parallelism 1
        core.patch_namespaced_pod_status(pod.metadata.name, namespace,
                                         {"status": {"phase": "Succeeded"}})
    done = wait_for(lambda: (j := batch.read_namespaced_job("work", namespace)).status
                    .conditions and j, what="a final condition")
    assert [c.type for c in done.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert done.status.succeeded == 2 and done.status.completion_time is not None


def test_a_daemonset_puts_one_pod_on_each_ready_node(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    node = f"kinds-node-{namespace}"
    core.create_node({"metadata": {"name": node}})
    try:
        core.patch_node_status(node, {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastTransitionTime": datetime.datetime.now(datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")}]}})
        apps.create_namespaced_daemon_set(namespace, {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c",
                                                           "image": "busybox"}]}}}})
        pods = wait_for(lambda: [p for p in pods_of(core, namespace)
                                 if p.spec.node_name == node], what="the node's daemon pod")
        terms = pods[0].spec.affinity.node_affinity \
            .required_during_scheduling_ignored_during_execution.node_selector_terms
        assert terms[0].match_fields[0].values == [node]
        ds = wait_for(lambda: (d := apps.read_namespaced_daemon_set("agent", namespace))
                      .status.desired_number_scheduled and d, what="status")
        assert ds.status.desired_number_scheduled == ds.status.current_number_scheduled
    finally:
        core.delete_node(node)


def test_repeated_events_are_one_event_with_a_count() -> None:
    agg = Aggregator("kubelet", "node-a")
    pod = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}
    first = agg.record(pod, "Warning", "BackOff", "Back-off restarting", "spec.containers{c}")
    assert first.patch is None and first.body["count"] == 1
    assert first.body["involvedObject"]["fieldPath"] == "spec.containers{c}"
    assert first.body["source"] == {"component": "kubelet", "host": "node-a"}
    again = agg.record(pod, "Warning", "BackOff", "Back-off restarting", "spec.containers{c}")
    assert again.name == first.name and again.patch is not None
    assert again.patch["count"] == 2
    other = agg.record(pod, "Normal", "Started", "Started container c", "spec.containers{c}")
    assert other.patch is None and other.name != first.name
    agg.forget(first)
    assert agg.record(pod, "Warning", "BackOff", "Back-off restarting",
                      "spec.containers{c}").patch is None


def test_claim_templates_make_bound_claims_that_go_with_the_set_when_asked(
        apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    body = sts(replicas=2, policy="Parallel")
    body["spec"]["volumeClaimTemplates"] = [{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "2Gi"}}}}]
    body["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete",
                                                            "whenScaled": "Retain"}
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}]
    apps.create_namespaced_stateful_set(namespace, body)
    claims = wait_for(lambda: len(c := core.list_namespaced_persistent_volume_claim(
        namespace).items) == 2 and all(x.status.phase == "Bound" for x in c) and c,
        what="2 bound claims")
    assert sorted(c.metadata.name for c in claims) == ["data-db-0", "data-db-1"]
    assert all(c.spec.volume_name.startswith("pvc-") for c in claims)
    pod = core.read_namespaced_pod("db-1", namespace)
    assert [(v.name, v.persistent_volume_claim.claim_name) for v in pod.spec.volumes
            if v.persistent_volume_claim] == [("data", "data-db-1")]
    apps.delete_namespaced_stateful_set("db", namespace, propagation_policy="Background")
    wait_for(lambda: not core.list_namespaced_persistent_volume_claim(namespace).items,
             what="claims collected with the set")


def test_a_job_past_its_deadline_fails_and_a_finished_one_expires_after_its_ttl(
        core: client.CoreV1Api, kube: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
    pod_spec = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    batch.create_namespaced_job(namespace, {
        "metadata": {"name": "slow"},
        "spec": {"activeDeadlineSeconds": 1, "template": {"spec": pod_spec}}})
    job = wait_for(lambda: (j := batch.read_namespaced_job("slow", namespace)).status
                   .conditions and j, timeout=10, what="the deadline")
    failed = [c for c in job.status.conditions if c.type == "Failed"]
    assert failed and failed[0].reason == "DeadlineExceeded"
    wait_for(lambda: not [p for p in pods_of(core, namespace)
                          if p.metadata.labels.get("job-name") == "slow"],
             what="the overdue pod deleted")
    batch.create_namespaced_job(namespace, {
        "metadata": {"name": "brief"},
        "spec": {"ttlSecondsAfterFinished": 1, "template": {"spec": pod_spec}}})
    pod = wait_for(lambda: [p for p in pods_of(core, namespace)
                            if p.metadata.labels.get("job-name") == "brief"],
                   what="the pod")[0]
    core.patch_namespaced_pod_status(pod.metadata.name, namespace,
                                     {"status": {"phase": "Succeeded"}})
    wait_for(lambda: "brief" not in [j.metadata.name for j in
                                     batch.list_namespaced_job(namespace).items],
             timeout=15, what="the finished job expired")
