"""DaemonSet -> one Pod per Ready node whose labels match the template's `nodeSelector`
(pinned by node affinity on `metadata.name`, bound by the scheduler as upstream), a
RollingUpdate that replaces `maxUnavailable` old pods at a time, and the status fields
`kubectl rollout status daemonset/X` reads."""

from __future__ import annotations

import copy
import logging
from typing import Any

from . import errors, revisions
from .base import Context, PodOwnerController
from .deployutil import template_hash
from .kube import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, Obj
from .machinery import FuncHandler
from .objects import (
    controller_ref,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    key_of,
    labels_of,
    now,
    owner_ref_to,
)
from .scheduler import node_ready

log = logging.getLogger(__name__)

GENERATION_LABEL = "pod-template-generation"
_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
     "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
     "effect": "NoSchedule"},
]


def ds_hash(ds: Obj) -> str:
    return template_hash(ds["spec"].get("template") or {})


def pod_for(ds: Obj, node: str) -> Obj:
    template = copy.deepcopy(ds["spec"].get("template") or {})
    meta = template.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels[revisions.HASH_LABEL] = ds_hash(ds)
    labels[GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
    spec = template.get("spec") or {}
    spec["affinity"] = {**(spec.get("affinity") or {}), "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    tolerations = list(spec.get("tolerations") or [])
    tolerations += [t for t in _TOLERATIONS if t not in tolerations]
    spec["tolerations"] = tolerations
    return {"metadata": {"generateName": f"{ds['metadata']['name']}-",
                         "namespace": ds["metadata"]["namespace"], "labels": labels,
                         "annotations": meta.get("annotations") or {},
                         "ownerReferences": [owner_ref_to(ds, "DaemonSet", "apps/v1")]},
            "spec": spec}


def _node_of(pod: Obj) -> str:
    if pod.get("spec", {}).get("nodeName"):
        return str(pod["spec"]["nodeName"])
    terms = (pod.get("spec", {}).get("affinity", {}).get("nodeAffinity", {})
             .get("requiredDuringSchedulingIgnoredDuringExecution", {})
             .get("nodeSelectorTerms") or [])
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return str(f["values"][0])
    return ""


def _max_unavailable(ds: Obj, desired: int) -> int:
    rolling = (ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        return max(1, desired * int(value[:-1]) // 100)
    return max(1, int(value))


class DaemonSetController(PodOwnerController):
    owner_kind = "DaemonSet"
    name = "daemonset-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = self.informer(ctx.informers.get(DAEMONSETS))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.nodes = self.informer(ctx.informers.get(NODES))
        self.revs = self.informer(ctx.informers.get(CONTROLLERREVISIONS))
        self.sets.add_handler(FuncHandler(add=self.enqueue, update=lambda o, n: self.enqueue(n),
                                          delete=lambda d: self.expectations.forget(key_of(d))))
        self.pods.add_handler(FuncHandler(add=self._pod_added,
                                          update=lambda o, n: self._pod_event(n),
                                          delete=self._pod_event))
        self.nodes.add_handler(FuncHandler(add=self._node_event,
                                           update=lambda o, n: self._node_event(n),
                                           delete=self._node_event))

    def _node_event(self, node: Obj) -> None:
        for ds in self.sets.items():
            self.enqueue(ds)

    def _nodes_for(self, ds: Obj) -> list[str]:
        selector = (ds["spec"].get("template") or {}).get("spec", {}).get("nodeSelector") or {}
        return sorted(n["metadata"]["name"] for n in self.nodes.items()
                      if node_ready(n) and all(labels_of(n).get(k) == v
                                               for k, v in selector.items()))

    def sync(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        if is_deleting(ds):
            return
        uid = ds["metadata"]["uid"]
        pods = [p for p in self.pods.items()
                if p["metadata"].get("namespace") == ds["metadata"]["namespace"]
                and (controller_ref(p) or {}).get("uid") == uid]
        revisions.ensure(self.kube, ds, "DaemonSet", self.revs.items())
        nodes = self._nodes_for(ds)
        current_hash = ds_hash(ds)
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            if p.get("status", {}).get("phase") in ("Succeeded", "Failed") and \
                    not is_deleting(p):
                self._delete(ds, p)  # a daemon pod that ended is replaced
                continue
            by_node.setdefault(_node_of(p), []).append(p)
        if self.expectations.satisfied(key):
            self._manage(key, ds, nodes, by_node, current_hash)
        self._status(ds, nodes, by_node, current_hash)

    def _manage(self, key: str, ds: Obj, nodes: list[str], by_node: dict[str, list[Obj]],
                current_hash: str) -> None:
        missing = [n for n in nodes if not [p for p in by_node.get(n, [])
                                            if not is_deleting(p)]]
        surplus = [p for n, ps in by_node.items() if n not in nodes for p in ps
                   if not is_deleting(p)]
        for ps in by_node.values():  # more than one daemon pod on a node: keep the oldest
            live = sorted((p for p in ps if not is_deleting(p)),
                          key=lambda p: p["metadata"].get("creationTimestamp") or "")
            surplus += live[1:]
        for node in missing:
            self.expectations.expect(key, adds=1)
            body = pod_for(ds, node)
            try:
                pod = self.kube.create(PODS, ds["metadata"]["namespace"], body)
            except errors.ControllerError:
                self.expectations.creation_failed(key)
                raise
            self.recorder.event(ds, "Normal", "SuccessfulCreate",
                                f"Created pod: {pod['metadata']['name']}")
        for pod in surplus:
            self._delete(ds, pod)
        strategy = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate" or missing:
            return
        live = [p for n in nodes for p in by_node.get(n, []) if not is_deleting(p)]
        old = [p for p in live if labels_of(p).get(revisions.HASH_LABEL) != current_hash]
        unavailable = sum(1 for n in nodes if not any(
            is_pod_ready(p) and not is_deleting(p) for p in by_node.get(n, [])))
        budget = _max_unavailable(ds, len(nodes)) - unavailable
        # not-ready old pods go first: replacing them costs no availability
        for pod in sorted(old, key=is_pod_ready):
            if is_pod_ready(pod):
                if budget <= 0:
                    break
                budget -= 1
            self._delete(ds, pod)

    def _delete(self, ds: Obj, pod: Obj) -> None:
        try:
            self.kube.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                             uid=pod["metadata"]["uid"])
        except errors.NotFound:
            return
        self.recorder.event(ds, "Normal", "SuccessfulDelete",
                            f"Deleted pod: {pod['metadata']['name']}")

    def _status(self, ds: Obj, nodes: list[str], by_node: dict[str, list[Obj]],
                current_hash: str) -> None:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        at = now()
        scheduled = [n for n in nodes if by_node.get(n)]
        newest = {n: [p for p in by_node.get(n, []) if not is_deleting(p)] for n in nodes}
        ready = sum(1 for n in nodes if any(is_pod_ready(p) for p in newest[n]))
        available = sum(1 for n in nodes if any(is_pod_available(p, min_ready, at)
                                                for p in newest[n]))
        updated = sum(1 for n in nodes if any(
            labels_of(p).get(revisions.HASH_LABEL) == current_hash for p in newest[n]))
        status: dict[str, Any] = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": sum(1 for n in by_node if n not in nodes),
            "desiredNumberScheduled": len(nodes),
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 0),
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
        }
        if len(nodes) - available:
            status["numberUnavailable"] = len(nodes) - available
        old = ds.get("status") or {}
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status != old:
            self.kube.update(DAEMONSETS, dict(ds, status=status), "status")
