"""ReplicaSet -> Pods: create from the template, delete the surplus (least valuable
first), adopt matching orphans and release pods that stopped matching, report status."""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging

from . import errors
from .base import Context, PodOwnerController
from .kube import PODS, REPLICASETS, Obj
from .machinery import FuncHandler
from .objects import (
    controller_ref,
    deletion_rank,
    is_deleting,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    key_of,
    labels_of,
    matches_labels,
    matches_selector,
    now,
    owner_ref_to,
    parse_time,
)

log = logging.getLogger(__name__)


def pod_from_template(rs: Obj) -> Obj:
    """The pod a ReplicaSet creates (generateName `<rs>-`, controller reference)."""
    template = copy.deepcopy(rs["spec"].get("template") or {})
    meta = template.get("metadata") or {}
    return {
        "metadata": {
            "generateName": f"{rs['metadata']['name']}-",
            "namespace": rs["metadata"]["namespace"],
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [owner_ref_to(rs, "ReplicaSet", "apps/v1")],
        },
        "spec": template.get("spec") or {},
    }


def rs_status(rs: Obj, pods: list[Obj], at: datetime.datetime) -> Obj:
    """Status counts over the active pods the ReplicaSet owns."""
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    template_labels = (rs["spec"].get("template", {}).get("metadata") or {}).get("labels") or {}
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods
                                    if matches_labels(template_labels, labels_of(p))),
        "readyReplicas": sum(1 for p in pods if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_pod_available(p, min_ready, at)),
        "observedGeneration": rs["metadata"].get("generation", 0),
    }
    old = rs.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


class ReplicaSetController(PodOwnerController):
    owner_kind = "ReplicaSet"
    name = "replicaset-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.rss = self.informer(ctx.informers.get(REPLICASETS))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.rss.add_handler(FuncHandler(add=self.enqueue, update=lambda o, n: self.enqueue(n),
                                         delete=self._rs_deleted))
        self.pods.add_handler(FuncHandler(add=self._pod_added, update=self._pod_updated,
                                          delete=self._pod_deleted))

    # -- event handlers: map pods to their ReplicaSet --------------------------

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(key_of(rs))
        self.enqueue(rs)

    def _enqueue_matching(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for rs in self.rss.items():
            if rs["metadata"].get("namespace") == ns and matches_selector(
                    rs["spec"].get("selector"), labels_of(pod)):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.expectations.created(owner)
            self.queue.add(owner)
        elif not is_deleting(pod):
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if is_deleting(pod) and not is_deleting(old) and owner:
            self.expectations.deleted(owner, key_of(pod))
        old_owner = self._owner_key(old)
        if old_owner and old_owner != owner:
            self.queue.add(old_owner)
        if owner:
            self.queue.add(owner)
            # a pod that turns ready becomes available later with minReadySeconds
            rs = self.rss.get(owner)
            min_ready = int((rs or {}).get("spec", {}).get("minReadySeconds") or 0)
            if min_ready and is_pod_ready(pod) and not is_pod_ready(old):
                self.queue.add_after(owner, min_ready + 0.5)
        elif labels_of(old) != labels_of(pod) or not old_owner:
            self._enqueue_matching(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.expectations.deleted(owner, key_of(pod))
            self.queue.add(owner)

    # -- reconcile --------------------------------------------------------------

    def _claim(self, rs: Obj) -> list[Obj]:
        """Pods this ReplicaSet controls after adopting orphans and releasing pods
        whose labels no longer match (upstream ClaimPods)."""
        ns, uid = rs["metadata"]["namespace"], rs["metadata"]["uid"]
        selector = rs["spec"].get("selector")
        owned: list[Obj] = []
        for pod in self.pods.items():
            if pod["metadata"].get("namespace") != ns:
                continue
            ref = controller_ref(pod)
            matches = matches_selector(selector, labels_of(pod))
            if ref is not None and ref.get("uid") == uid:
                if matches or is_deleting(rs):
                    owned.append(pod)
                elif not is_deleting(pod):
                    self._release(pod, uid)
            elif ref is None and matches and not is_deleting(pod) and not is_deleting(rs):
                adopted = self._adopt(rs, pod)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        refs = list(pod["metadata"].get("ownerReferences") or [])
        refs.append(owner_ref_to(rs, "ReplicaSet", "apps/v1"))
        try:
            return self.kube.merge_patch(PODS, pod["metadata"]["namespace"],
                                         pod["metadata"]["name"], {"metadata": {
                                             "ownerReferences": refs,
                                             "uid": pod["metadata"]["uid"],
                                             "resourceVersion":
                                                 pod["metadata"]["resourceVersion"]}})
        except (errors.NotFound, errors.Conflict):
            return None

    def _release(self, pod: Obj, uid: str) -> None:
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        with contextlib.suppress(errors.NotFound):
            self.kube.merge_patch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                  {"metadata": {"ownerReferences": refs or None,
                                                "resourceVersion":
                                                    pod["metadata"]["resourceVersion"]}})

    def sync(self, key: str) -> None:
        rs = self.rss.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        pods = [p for p in self._claim(rs) if is_pod_active(p)]
        if self.expectations.satisfied(key) and not is_deleting(rs):
            self._manage(key, rs, pods)
        at = now()
        status = rs_status(rs, pods, at)
        if status != (rs.get("status") or {}):
            updated = dict(rs, status=status)
            self.kube.update(REPLICASETS, updated, "status")
        # requeue when a ready pod will become available (minReadySeconds)
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        if min_ready:
            waits = []
            for p in pods:
                if is_pod_ready(p) and not is_pod_available(p, min_ready, at):
                    since = parse_time(next((c.get("lastTransitionTime") for c in
                                             p.get("status", {}).get("conditions") or []
                                             if c.get("type") == "Ready"), None))
                    if since:
                        waits.append((since - at).total_seconds() + min_ready)
            if waits:
                self.queue.add_after(key, max(0.1, min(waits)) + 0.1)

    def _manage(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        want = int(rs["spec"].get("replicas", 1) if rs["spec"].get("replicas") is not None
                   else 1)
        diff = want - len(pods)
        ns = rs["metadata"]["namespace"]
        if diff > 0:
            self.expectations.expect(key, adds=diff)
            body = pod_from_template(rs)
            for made in range(diff):
                try:
                    pod = self.kube.create(PODS, ns, copy.deepcopy(body))
                except errors.ControllerError as exc:
                    for _ in range(diff - made):   # this one and those not attempted
                        self.expectations.creation_failed(key)
                    if isinstance(exc, errors.KubeError):  # e.g. refused by PodSecurity
                        self.recorder.event(rs, "Warning", "FailedCreate",
                                            f"Error creating: {exc.message}")
                    raise
                self.recorder.event(rs, "Normal", "SuccessfulCreate",
                                    f"Created pod: {pod['metadata']['name']}")
        elif diff < 0:
            victims = sorted(pods, key=deletion_rank)[: -diff]
            self.expectations.expect(key, deletes={key_of(p) for p in victims})
            for pod in victims:
                try:
                    self.kube.delete(PODS, ns, pod["metadata"]["name"],
                                     uid=pod["metadata"]["uid"])
                except errors.NotFound:
                    self.expectations.deleted(key, key_of(pod))
                    continue
                self.recorder.event(rs, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {pod['metadata']['name']}")
