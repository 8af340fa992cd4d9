"""The pure parts of the controllers: hashing, rollout arithmetic, conditions,
endpoint building, pod ranking and the work queue."""

from __future__ import annotations

import datetime
import threading

import pytest
from tp_sandbox.controllers import deployutil as du
from tp_sandbox.controllers.endpointsutil import build_slice_groups, build_subsets
from tp_sandbox.controllers.machinery import Expectations, WorkQueue
from tp_sandbox.controllers.manager import select
from tp_sandbox.controllers.objects import deletion_rank, matches_selector

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def deployment(replicas: int = 3, surge: object = None, unavailable: object = None,
               strategy: str = "RollingUpdate", generation: int = 1) -> dict:
    ru = {k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None}
    return {"metadata": {"name": "web", "namespace": "ns", "generation": generation},
            "spec": {"replicas": replicas, "template": TEMPLATE,
                     "strategy": {"type": strategy, "rollingUpdate": ru}},
            "status": {}}


def rs(name: str, replicas: int, available: int = 0, total: int | None = None) -> dict:
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": name},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if total is None else total,
                       "availableReplicas": available, "readyReplicas": available}}


def pod(name: str, ip: str = "", *, ready: bool = False, node: str = "", phase: str = "Running",
        created: str = "2025-01-01T00:00:00Z", ports: list | None = None) -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": "2025-01-01T00:00:10Z"}]
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}",
                         "labels": {"app": "web"}, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"phase": phase, "podIP": ip, "conditions": conds}}


def test_the_template_hash_is_stable_safe_and_changes_with_the_template_or_collisions() -> None:
    h = du.template_hash(TEMPLATE)
    assert h == du.template_hash({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 6 <= len(h) <= 10
    other = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "alpine"}]}}
    assert du.template_hash(other) != h
    assert du.template_hash(TEMPLATE, 1) != h


def test_templates_compare_equal_ignoring_the_hash_label() -> None:
    labelled = {"metadata": {"labels": {"app": "web", du.HASH_LABEL: "abc"}},
                "spec": TEMPLATE["spec"]}
    assert du.equal_ignore_hash(labelled, TEMPLATE)
    assert not du.equal_ignore_hash(labelled, {**TEMPLATE, "spec": {}})


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (4, None, None, (1, 1)),          # 25% each: surge rounds up, unavailable down
    (10, "30%", "30%", (3, 3)),
    (3, 0, 0, (0, 1)),                # both zero would never progress
    (3, "50%", 1, (2, 1)),
])
def test_surge_and_unavailable_resolve_ints_and_percentages(
        replicas: int, surge: object, unavailable: object, expected: tuple[int, int]) -> None:
    assert du.fenceposts(deployment(replicas, surge, unavailable)) == expected


def test_a_bad_percentage_is_a_spec_error() -> None:
    with pytest.raises(du.SpecError, match="invalid value"):
        du.fenceposts(deployment(3, "lots%"))


def test_the_new_replicaset_grows_only_within_max_surge() -> None:
    d = deployment(3, surge=1, unavailable=0)
    old, new = rs("a", 3, 3), rs("b", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 1
    assert du.new_rs_new_replicas(d, [rs("a", 3, 3), rs("b", 1)], rs("b", 1)) == 1
    assert du.new_rs_new_replicas(d, [rs("a", 2, 2), rs("b", 1)], rs("b", 1)) == 2
    assert du.new_rs_new_replicas(deployment(3, strategy="Recreate"), [new], new) == 3


def test_old_replicas_go_only_while_enough_stay_available() -> None:
    d = deployment(3, surge=1, unavailable=0)
    new_unready, old = rs("b", 1, 0), rs("a", 3, 3)
    assert du.max_scaled_down(d, [old, new_unready], new_unready) == 0
    new_ready = rs("b", 1, 1)
    assert du.max_scaled_down(d, [old, new_ready], new_ready) == 1
    assert du.old_scale_down_budget(d, [old, new_ready]) == 1


def test_status_reports_progress_then_success_with_the_real_messages() -> None:
    d = deployment(2)
    new = rs("web-abc", 2, 0)
    s = du.rollout_status(d, [new], new, 600, T0)
    assert s["updatedReplicas"] == 2 and s["availableReplicas"] == 0
    assert du.get_condition(s, "Available")["reason"] == du.MIN_UNAVAILABLE
    d["status"] = s
    done = rs("web-abc", 2, 2)
    s2 = du.rollout_status(d, [done], done, 600, T0)
    cond = du.get_condition(s2, "Progressing")
    assert cond["reason"] == du.NEW_RS_AVAILABLE
    assert cond["message"] == 'ReplicaSet "web-abc" has successfully progressed.'
    assert du.get_condition(s2, "Available")["message"] == "Deployment has minimum availability."


def test_a_stalled_rollout_times_out_after_its_progress_deadline() -> None:
    d = deployment(2)
    new = rs("web-abc", 2, 0)
    # nothing moved since the last status: no progress
    d["status"] = {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 0,
                   "availableReplicas": 0,
                   "conditions": [du.new_condition("Progressing", "True", du.RS_UPDATED, "x",
                                                   T0)]}
    later = T0 + datetime.timedelta(seconds=61)
    s = du.rollout_status(d, [new], new, 60, later)
    cond = du.get_condition(s, "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", du.TIMED_OUT)
    assert cond["message"] == 'ReplicaSet "web-abc" has timed out progressing.'


def test_old_empty_replicasets_beyond_the_history_limit_are_cleaned_oldest_first() -> None:
    olds = []
    for i in range(4):
        r = rs(f"r{i}", 0)
        r["metadata"]["annotations"] = {du.REVISION: str(i + 1)}
        olds.append(r)
    d = deployment()
    d["spec"]["revisionHistoryLimit"] = 2
    assert [r["metadata"]["name"] for r in du.cleanup_candidates(d, olds)] == ["r0", "r1"]


def test_proportional_scaling_spreads_the_difference_by_size() -> None:
    sizes = du.proportions(deployment(), [rs("a", 6), rs("b", 3)], 3)
    assert sum(sizes.values()) == 12 and sizes["a"] >= 8


def test_surplus_pods_are_chosen_unscheduled_then_not_ready_then_newest() -> None:
    pods = [pod("ready-old", ready=True, node="n", created="2025-01-01T00:00:00Z"),
            pod("ready-new", ready=True, node="n", created="2025-01-01T00:05:00Z"),
            pod("notready", node="n"),
            pod("unscheduled", phase="Pending")]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]
    assert order == ["unscheduled", "notready", "ready-new", "ready-old"]


def test_label_selectors_support_match_expressions_and_never_select_everything() -> None:
    labels = {"app": "web", "tier": "front"}
    assert matches_selector({"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "tier", "operator": "In",
                                                   "values": ["front"]}]}, labels)
    assert not matches_selector({"matchExpressions": [{"key": "tier",
                                                       "operator": "DoesNotExist"}]}, labels)
    assert not matches_selector({}, labels)


SERVICE = {"metadata": {"name": "web", "namespace": "ns"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def test_endpoints_split_ready_and_not_ready_and_resolve_named_ports_per_pod() -> None:
    pods = [pod("a", "10.244.0.2", ready=True, ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.0.3", ports=[{"name": "http", "containerPort": 8080}]),
            pod("c", "10.244.0.4", ready=True, ports=[{"name": "http", "containerPort": 9090}]),
            pod("d", "", ready=True, ports=[{"name": "http", "containerPort": 8080}]),
            pod("e", "10.244.0.5", ready=True)]  # no such named port: left out
    subsets = build_subsets(SERVICE, pods)
    assert len(subsets) == 2
    s8080 = next(s for s in subsets if s["ports"][0]["port"] == 8080)
    assert [a["ip"] for a in s8080["addresses"]] == ["10.244.0.2"]
    assert [a["ip"] for a in s8080["notReadyAddresses"]] == ["10.244.0.3"]
    assert s8080["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "ns",
                                                  "name": "a", "uid": "u-a"}
    groups = build_slice_groups(SERVICE, pods)
    assert [g[0][0]["port"] for g in groups] == [8080, 9090]
    eps = {e["targetRef"]["name"]: e["conditions"]["ready"] for e in groups[0][1]}
    assert eps == {"a": True, "b": False}


def test_a_service_without_pods_gets_one_empty_slice() -> None:
    assert build_slice_groups(SERVICE, []) == [([], [])]


def test_the_work_queue_deduplicates_and_holds_keys_re_added_while_processing() -> None:
    q = WorkQueue("t", 0.01, 0.1)
    q.add("a")
    q.add("a")
    q.add("b")
    assert q.get() == "a"
    q.add("a")  # while processing: kept for later, not handed to another worker
    assert q.get() == "b"
    q.done("b")
    q.done("a")
    assert q.get() == "a"
    q.done("a")
    q.add_after("c", 0.05)
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()), name="test-get")
    t.start()
    t.join(2)
    assert got == ["c"]
    q.shutdown()
    assert q.get() is None


def test_expectations_hold_until_observed() -> None:
    e = Expectations(timeout=60)
    e.expect("ns/rs", adds=2)
    assert not e.satisfied("ns/rs")
    e.created("ns/rs")
    e.created("ns/rs")
    assert e.satisfied("ns/rs")


def test_the_controller_list_accepts_star_and_exclusions_and_rejects_unknown_names() -> None:
    assert "scheduler" not in select("*,-scheduler")
    assert select("deployment") == ["deployment"]
    with pytest.raises(ValueError, match="choose from"):
        select("nope")


def test_replicaset_status_counts_available_only_after_min_ready_seconds() -> None:
    from tp_sandbox.controllers.replicaset import rs_status

    rset = {"metadata": {"generation": 3},
            "spec": {"minReadySeconds": 30, "template": TEMPLATE}}
    pods = [pod("a", "10.244.0.2", ready=True), pod("b", "10.244.0.3")]
    ready_at = datetime.datetime(2025, 1, 1, 0, 0, 10, tzinfo=datetime.UTC)
    early = rs_status(rset, pods, ready_at + datetime.timedelta(seconds=5))
    assert (early["replicas"], early["readyReplicas"], early["availableReplicas"]) == (2, 1, 0)
    late = rs_status(rset, pods, ready_at + datetime.timedelta(seconds=31))
    assert late["availableReplicas"] == 1 and late["observedGeneration"] == 3
    assert late["fullyLabeledReplicas"] == 2
