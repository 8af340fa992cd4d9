"""Label and field selectors, parsed once per request into a predicate on objects.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
Field selectors: `f=v`, `f==v`, `f!=v` over the fields a real API server supports for
each kind (anything else is a 400 "field label not supported").
Parse errors raise errors.BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tp_sandbox.apiserver import errors

Obj = dict[str, Any]
Pred = Callable[[Obj], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^)]*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (`in (a,b)` holds commas)."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _label_term(term: str) -> Pred:
    if m := _SET_RE.match(term):
        key, op = m.group(1), m.group(2)
        values = {v.strip() for v in m.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(term):
        neg, key = m.groups()
        if neg:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise errors.BadRequest(
        f"unable to parse requirement: {term!r}: use key=value, key!=value, "
        "key in (a,b), key notin (a,b), key or !key"
    )


def label_selector(text: str | None) -> Pred:
    terms = [_label_term(t) for t in _split_top(text or "")]

    def match(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in terms)

    return match


def _path(*keys: str) -> Callable[[Obj], Any]:
    def get(obj: Obj) -> Any:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return cur

    return get


def _pod_ips(obj: Obj) -> str:
    return ",".join(p.get("ip", "") for p in obj.get("status", {}).get("podIPs") or [])


_COMMON: dict[str, Callable[[Obj], Any]] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
_INVOLVED = {f"involvedObject.{k}": _path("involvedObject", k)
             for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                       "fieldPath")}
FIELDS: dict[str, dict[str, Callable[[Obj], Any]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: str(bool(o.get("spec", {}).get("hostNetwork"))).lower(),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.podIPs": _pod_ips,
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Secret": {"type": _path("type")},
    "Event": {
        **_INVOLVED,
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "Node": {"spec.unschedulable": lambda o: str(bool(o.get("spec", {})
                                                      .get("unschedulable"))).lower()},
    "Namespace": {"status.phase": _path("status", "phase")},
    "ReplicaSet": {"status.replicas": _path("status", "replicas")},
    "Service": {"spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type")},
}


def field_selector(text: str | None, kind: str) -> Pred:
    fields = {**_COMMON, **FIELDS.get(kind, {})}
    terms: list[tuple[Callable[[Obj], Any], bool, str]] = []
    for term in _split_top(text or ""):
        m = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not m:
            raise errors.BadRequest(f"invalid field selector {term!r}: use field=value or "
                                    "field!=value")
        name, op, value = m.groups()
        getter = fields.get(name)
        if getter is None:
            raise errors.BadRequest(f"field label not supported: {name}")
        terms.append((getter, op == "!=", value))

    def match(obj: Obj) -> bool:
        for getter, negate, value in terms:
            got = getter(obj)
            got_s = "" if got is None else str(got)
            if (got_s == value) == negate:
                return False
        return True

    return match
