"""A trivial scheduler: pods for `default-scheduler` without a node are bound to a
Ready node; with none they stay Pending with PodScheduled=False/Unschedulable."""

from __future__ import annotations

import logging

from .base import Context, Controller
from .kube import NODES, PODS, Obj
from .machinery import FuncHandler
from .objects import is_deleting, now, pod_condition, split_key, timestamp

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
NO_NODES = "no nodes available to schedule pods"


def wants_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec", {})
    return (not spec.get("nodeName") and not is_deleting(pod)
            and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and pod.get("status", {}).get("phase", "Pending") == "Pending")


def node_ready(node: Obj) -> bool:
    if node.get("spec", {}).get("unschedulable") or is_deleting(node):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions") or [])


def unschedulable_message(nodes: list[Obj]) -> str:
    if not nodes:
        return NO_NODES
    n = len(nodes)
    return f"0/{n} nodes are available: {n} node(s) were not ready or were unschedulable."


class Scheduler(Controller):
    name = "default-scheduler"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pods = self.informer(ctx.informers.get(PODS))
        self.nodes = self.informer(ctx.informers.get(NODES))
        self.pods.add_handler(FuncHandler(add=self._pod, update=lambda o, n: self._pod(n)))
        self.nodes.add_handler(FuncHandler(add=self._node, update=lambda o, n: self._node(n)))

    def _pod(self, pod: Obj) -> None:
        if wants_scheduling(pod):
            self.enqueue(pod)

    def _node(self, node: Obj) -> None:
        if node_ready(node):
            for pod in self.pods.items():
                self._pod(pod)

    def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not wants_scheduling(pod):
            return
        ns, name = split_key(key)
        assert ns is not None
        nodes = self.nodes.items()
        ready = sorted((n for n in nodes if node_ready(n)), key=lambda n: n["metadata"]["name"])
        if ready:
            node = ready[0]["metadata"]["name"]
            self.kube.bind(ns, name, node)
            self.recorder.event(pod, "Normal", "Scheduled",
                                f"Successfully assigned {ns}/{name} to {node}")
            return
        message = unschedulable_message(nodes)
        current = pod_condition(pod, "PodScheduled")
        if current and current.get("reason") == "Unschedulable" \
                and current.get("message") == message:
            return
        conditions = [c for c in pod.get("status", {}).get("conditions") or []
                      if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": message, "lastProbeTime": None,
                           "lastTransitionTime": timestamp(now())})
        # conditions are replaced whole: the resourceVersion guards others' writes
        self.kube.merge_patch(PODS, ns, name, {
            "metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
            "status": {"phase": "Pending", "conditions": conditions}}, "status")
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
