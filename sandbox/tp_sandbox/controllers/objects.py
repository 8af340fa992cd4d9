"""Small pure helpers on API objects (dicts): keys, times, selectors, pod state."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from ..k8sutil import label_selector_matches

Obj = dict[str, Any]


def key_of(obj: Mapping[str, Any]) -> str:
    """Work-queue key: `namespace/name` (or `name` for cluster-scoped objects)."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(t: datetime.datetime | None = None) -> str:
    """RFC 3339 with seconds, as Kubernetes writes `metav1.Time`."""
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


# -- label selectors -----------------------------------------------------------

def matches_labels(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service-style selector (a plain map) against labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def matches_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A `metav1.LabelSelector` against labels; an empty selector matches nothing
    here, as controllers treat it (a workload never owns everything)."""
    if not selector:
        return False
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return False
    return label_selector_matches(selector, labels)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


# -- owner references ------------------------------------------------------------

def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_ref_to(owner: Mapping[str, Any], kind: str, api_version: str) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


# -- pods ------------------------------------------------------------------------

def pod_condition(pod: Mapping[str, Any], ctype: str) -> Obj | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    c = pod_condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int,
                     at: datetime.datetime) -> bool:
    """Ready for at least `min_ready_seconds` (as the ReplicaSet controller counts)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + datetime.timedelta(seconds=min_ready_seconds) <= at


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Counts toward replicas: not finished and not being deleted."""
    phase = pod.get("status", {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_deleting(pod)


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key: pods to delete first come first, as the ReplicaSet controller
    prefers unscheduled < pending < not ready < ready for less time < more restarts
    < newer."""
    status = pod.get("status", {})
    ready = is_pod_ready(pod)
    ready_since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    restarts = sum(int(c.get("restartCount") or 0)
                   for c in status.get("containerStatuses") or [])
    created = parse_time(pod.get("metadata", {}).get("creationTimestamp"))
    return (
        1 if pod.get("spec", {}).get("nodeName") else 0,
        _PHASE_RANK.get(status.get("phase", "Pending"), 0),
        1 if ready else 0,
        -(ready_since.timestamp() if ready and ready_since else 0.0),
        -restarts,
        -(created.timestamp() if created else float("inf")),
    )
