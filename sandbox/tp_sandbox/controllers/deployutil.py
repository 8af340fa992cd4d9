"""Pure arithmetic of the Deployment controller, following the upstream one
(pkg/controller/deployment/util): template hash, surge/unavailable fenceposts,
revisions, status and the Progressing/Available conditions with their messages.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .objects import Obj, is_deleting, parse_time, timestamp

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# annotations a Deployment does not hand down to its ReplicaSets
_NOT_COPIED = {REVISION, DESIRED_REPLICAS, MAX_REPLICAS,
               "deployment.kubernetes.io/revision-history",
               "kubectl.kubernetes.io/last-applied-configuration"}

# Progressing reasons
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
# Available reasons
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


class SpecError(ValueError):
    """A Deployment spec value the controller cannot use (e.g. a bad percentage)."""


def safe_encode(s: str) -> str:
    """apimachinery's rand.SafeEncodeString: no vowels, no confusable characters."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in s.encode())


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """`pod-template-hash` of a pod template: FNV-32a over a canonical rendering
    (upstream hashes Go's struct dump; canonical JSON is our stable equivalent),
    plus the collision count as upstream appends it, then safe-encoded."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0" * 4
    return safe_encode(str(_fnv32a(data)))


def _strip_hash(template: Mapping[str, Any]) -> Obj:
    t = copy.deepcopy(dict(template))
    labels = t.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
        if not labels:
            t["metadata"].pop("labels")
    meta = t.get("metadata")
    if meta is not None:
        meta.pop("creationTimestamp", None)
        if not meta:
            t.pop("metadata")
    return t


def equal_ignore_hash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _strip_hash(a) == _strip_hash(b)


# -- int-or-percent ------------------------------------------------------------

def scaled_value(value: int | str | None, total: int, round_up: bool, default: str) -> int:
    """An IntOrString against `total` (upstream GetScaledValueFromIntOrPercent)."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = int(text[:-1])
        except ValueError as exc:
            raise SpecError(f"invalid value for IntOrString: invalid value {value!r}") from exc
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    try:
        return int(text)
    except ValueError as exc:
        raise SpecError(f"invalid value for IntOrString: invalid value {value!r}") from exc


def replicas_of(obj: Mapping[str, Any]) -> int:
    r = obj.get("spec", {}).get("replicas")
    return 1 if r is None else int(r)


def is_rolling(d: Mapping[str, Any]) -> bool:
    strategy = d.get("spec", {}).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") != "Recreate")


def fenceposts(d: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas; both zero would
    deadlock, so unavailable becomes 1 (upstream ResolveFenceposts)."""
    desired = replicas_of(d)
    ru = (d.get("spec", {}).get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge"), desired, True, "25%")
    unavailable = scaled_value(ru.get("maxUnavailable"), desired, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Mapping[str, Any]) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Mapping[str, Any]) -> int:
    if not is_rolling(d) or replicas_of(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas_of(d))


def new_rs_new_replicas(d: Mapping[str, Any], all_rss: Iterable[Mapping[str, Any]],
                        new_rs: Mapping[str, Any]) -> int:
    """How many replicas the new ReplicaSet may have now."""
    desired = replicas_of(d)
    if not is_rolling(d):
        return desired
    current = sum(replicas_of(rs) for rs in all_rss)
    max_total = desired + max_surge(d)
    if current >= max_total:
        return replicas_of(new_rs)
    scale_up = min(max_total - current, desired - replicas_of(new_rs))
    return replicas_of(new_rs) + scale_up


def max_scaled_down(d: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]],
                    new_rs: Mapping[str, Any] | None) -> int:
    """How many old replicas may go away now without breaking maxUnavailable
    (upstream reconcileOldReplicaSets, first step)."""
    all_pods = sum(replicas_of(rs) for rs in all_rss)
    min_available = replicas_of(d) - max_unavailable(d)
    new_unavailable = 0
    if new_rs is not None:
        new_unavailable = replicas_of(new_rs) - int(
            new_rs.get("status", {}).get("availableReplicas") or 0)
    return all_pods - min_available - new_unavailable


def old_scale_down_budget(d: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]]) -> int:
    """Available old replicas above the minimum (scaleDownOldReplicaSetsForRollingUpdate)."""
    available = sum(int(rs.get("status", {}).get("availableReplicas") or 0) for rs in all_rss)
    min_available = replicas_of(d) - max_unavailable(d)
    return max(0, available - min_available)


# -- revisions -------------------------------------------------------------------

def revision_of(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: Iterable[Mapping[str, Any]]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def find_new_rs(d: Mapping[str, Any], rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's."""
    template = d.get("spec", {}).get("template", {})
    same = [rs for rs in rss if equal_ignore_hash(rs.get("spec", {}).get("template", {}),
                                                  template)]
    same.sort(key=lambda rs: (rs["metadata"].get("creationTimestamp", ""),
                              rs["metadata"]["name"]))
    return same[0] if same else None


def rs_annotations_from(d: Mapping[str, Any]) -> dict[str, str]:
    ann = d.get("metadata", {}).get("annotations") or {}
    return {k: v for k, v in ann.items() if k not in _NOT_COPIED}


def cleanup_candidates(d: Mapping[str, Any], old_rss: Sequence[Obj]) -> list[Obj]:
    """Old, empty ReplicaSets beyond revisionHistoryLimit (oldest revision first)."""
    limit = d.get("spec", {}).get("revisionHistoryLimit")
    limit = 10 if limit is None else int(limit)
    idle = [rs for rs in old_rss if not is_deleting(rs)]
    extra = len(idle) - limit
    if extra <= 0:
        return []
    idle.sort(key=lambda rs: (revision_of(rs), rs["metadata"].get("creationTimestamp", "")))
    out: list[Obj] = []
    for rs in idle:
        if len(out) >= extra:
            break
        if replicas_of(rs) == 0 and int(rs.get("status", {}).get("replicas") or 0) == 0:
            out.append(rs)
    return out


# -- status and conditions ---------------------------------------------------------

def get_condition(status: Mapping[str, Any], ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def new_condition(ctype: str, status: str, reason: str, message: str,
                  at: datetime.datetime) -> Obj:
    ts = timestamp(at)
    return {"type": ctype, "status": status, "lastUpdateTime": ts,
            "lastTransitionTime": ts, "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Upstream SetDeploymentCondition: same status and reason -> unchanged; same
    status -> keep lastTransitionTime."""
    current = get_condition(status, cond["type"])
    if current and current.get("status") == cond["status"] \
            and current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def _sum(rss: Iterable[Mapping[str, Any]], field: str) -> int:
    return sum(int(rs.get("status", {}).get(field) or 0) for rs in rss)


def calculate_status(d: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]],
                     new_rs: Mapping[str, Any] | None, at: datetime.datetime) -> Obj:
    """Replica counts and the Available condition (upstream calculateStatus)."""
    old = d.get("status", {})
    available = _sum(all_rss, "availableReplicas")
    total = sum(replicas_of(rs) for rs in all_rss)
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": _sum(all_rss, "replicas"),
        "updatedReplicas": _sum([new_rs] if new_rs else [], "replicas"),
        "readyReplicas": _sum(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= replicas_of(d) - max_unavailable(d):
        cond = new_condition("Available", "True", MIN_AVAILABLE,
                             "Deployment has minimum availability.", at)
    else:
        cond = new_condition("Available", "False", MIN_UNAVAILABLE,
                             "Deployment does not have minimum availability.", at)
    set_condition(status, cond)
    return status


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    want = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= d["metadata"].get("generation", 0))


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old = d.get("status", {})

    def g(s: Mapping[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    return (g(new, "updatedReplicas") > g(old, "updatedReplicas")
            or g(new, "replicas") - g(new, "updatedReplicas")
            < g(old, "replicas") - g(old, "updatedReplicas")
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def progress_deadline(d: Mapping[str, Any], default: int) -> int | None:
    """Seconds, or None when there is no deadline (upstream: MaxInt32 means none)."""
    v = d.get("spec", {}).get("progressDeadlineSeconds")
    v = default if v is None else int(v)
    return None if v >= 2**31 - 1 else v


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any], deadline: int | None,
                         at: datetime.datetime) -> bool:
    if deadline is None:
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + datetime.timedelta(seconds=deadline) < at


def rollout_status(d: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]],
                   new_rs: Mapping[str, Any] | None, deadline: int | None,
                   at: datetime.datetime) -> Obj:
    """The whole new status with the Progressing condition (upstream syncRolloutStatus)."""
    status = calculate_status(d, all_rss, new_rs, at)
    name = d["metadata"]["name"]
    if deadline is None:
        remove_condition(status, "Progressing")
    current = get_condition(d.get("status", {}), "Progressing")
    complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                       and current.get("reason") == NEW_RS_AVAILABLE)
    if deadline is not None and not complete_before:
        if deployment_complete(d, status):
            msg = f'Deployment "{name}" has successfully progressed.'
            if new_rs is not None:
                msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" has successfully progressed.'
            set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, at))
        elif deployment_progressing(d, status):
            msg = f'Deployment "{name}" is progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.'
            cond = new_condition("Progressing", "True", RS_UPDATED, msg, at)
            # progress refreshes lastUpdateTime even when the reason stays the same
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, "Progressing")
            set_condition(status, cond)
        elif deployment_timed_out(d, status, deadline, at):
            msg = f'Deployment "{name}" has timed out progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.'
            set_condition(status, new_condition("Progressing", "False", TIMED_OUT, msg, at))
    return status


def proportions(d: Mapping[str, Any], active: Sequence[Obj], to_add: int) -> dict[str, int]:
    """Upstream proportional scaling: spread `to_add` (may be negative) over the
    active ReplicaSets by their size, the remainder going to the largest
    (newest first on ties). Returns name -> new replicas."""
    total = sum(replicas_of(rs) for rs in active)
    order = sorted(active, key=lambda rs: (-replicas_of(rs),
                                           rs["metadata"].get("creationTimestamp", "")),
                   reverse=False)
    if to_add > 0:
        # ties: newer ReplicaSets grow first
        order = sorted(active, key=lambda rs: (replicas_of(rs),
                                               rs["metadata"].get("creationTimestamp", "")),
                       reverse=True)
    out: dict[str, int] = {}
    added = 0
    for rs in order:
        size = replicas_of(rs)
        share = 0
        if total > 0:
            share = int(size * to_add / total)  # truncates toward zero like Go
            if abs(added + share) > abs(to_add):
                share = to_add - added
        out[rs["metadata"]["name"]] = size + share
        added += share
    if order and added != to_add:
        first = order[0]["metadata"]["name"]
        out[first] = max(0, out[first] + to_add - added)
    return out
