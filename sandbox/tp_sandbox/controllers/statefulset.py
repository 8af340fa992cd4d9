"""StatefulSet -> Pods with stable identities: `NAME-0..N-1`, hostname = pod name,
subdomain = `spec.serviceName`, created in ordinal order (OrderedReady: each waits for
the previous to be Running and Ready; Parallel: all at once), removed highest ordinal
first, and replaced highest ordinal first, one at a time, on a RollingUpdate.

Revisions: the template's ControllerRevision names `controller-revision-hash` on the
pods; `status.currentRevision` is the revision all pods ran before a rollout and turns
into `updateRevision` once every pod is updated and ready.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from . import errors, revisions
from .base import Context, PodOwnerController
from .kube import CONTROLLERREVISIONS, PODS, PVCS, STATEFULSETS, Obj
from .machinery import FuncHandler
from .objects import (
    controller_ref,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    key_of,
    labels_of,
    matches_selector,
    now,
    owner_ref_to,
)

log = logging.getLogger(__name__)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    """The ordinal of `NAME-<n>`, or None for a pod not named by this set."""
    m = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(m.group(1)) if m else None


def start_ordinal(sts: Obj) -> int:
    return int(((sts["spec"].get("ordinals") or {}).get("start")) or 0)


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in sts["spec"].get("volumeClaimTemplates") or [] if isinstance(t, dict)]


def claim_template_name(template: Obj) -> str:
    return str((template.get("metadata") or {}).get("name", ""))


def claim_name(sts: Obj, template: Obj, ordinal: int) -> str:
    """`<template>-<set>-<ordinal>`: the claim outlives its pod (retained on delete)."""
    return f"{claim_template_name(template)}-{sts['metadata']['name']}-{ordinal}"


def new_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """A claim of one ordinal; owned by the set (collected with it) only when its
    `persistentVolumeClaimRetentionPolicy.whenDeleted` is Delete."""
    meta = template.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.update((sts["spec"].get("selector") or {}).get("matchLabels") or {})
    out: Obj = {"metadata": {"name": claim_name(sts, template, ordinal),
                             "namespace": sts["metadata"]["namespace"], "labels": labels,
                             "annotations": meta.get("annotations") or {}},
                "spec": copy.deepcopy(template.get("spec") or {})}
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    if policy.get("whenDeleted") == "Delete":
        out["metadata"]["ownerReferences"] = [
            {**owner_ref_to(sts, "StatefulSet", "apps/v1"), "controller": False}]
    return out


def new_pod(sts: Obj, ordinal: int, revision: Obj) -> Obj:
    """The pod of one ordinal at one revision (the revision's template)."""
    template = copy.deepcopy(revision["data"]["spec"]["template"])
    template.pop("$patch", None)
    meta = template.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{ordinal}"
    labels = dict(meta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, revisions.HASH_LABEL: revision["metadata"]["name"],
                   POD_INDEX_LABEL: str(ordinal)})
    spec = template.get("spec") or {}
    volumes = [v for v in spec.get("volumes") or []
               if v.get("name") not in {claim_template_name(t) for t in claim_templates(sts)}]
    for t in claim_templates(sts):
        volumes.append({"name": claim_template_name(t), "persistentVolumeClaim": {
            "claimName": claim_name(sts, t, ordinal)}})
    if volumes:
        spec["volumes"] = volumes
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    return {
        "metadata": {"name": name, "namespace": sts["metadata"]["namespace"],
                     "labels": labels, "annotations": meta.get("annotations") or {},
                     "ownerReferences": [owner_ref_to(sts, "StatefulSet", "apps/v1")]},
        "spec": spec,
    }


def _running_and_ready(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and is_pod_ready(pod)


def _finished(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def _revision_of(pod: Obj) -> str:
    return labels_of(pod).get(revisions.HASH_LABEL, "")


class StatefulSetController(PodOwnerController):
    owner_kind = "StatefulSet"
    name = "statefulset-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = self.informer(ctx.informers.get(STATEFULSETS))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.revs = self.informer(ctx.informers.get(CONTROLLERREVISIONS))
        self.sets.add_handler(FuncHandler(add=self.enqueue, update=lambda o, n: self.enqueue(n),
                                          delete=self._set_deleted))
        self.pods.add_handler(FuncHandler(add=self._pod_added,
                                          update=self._pod_changed,
                                          delete=self._pod_event))

    def _set_deleted(self, sts: Obj) -> None:
        self.expectations.forget(key_of(sts))

    def _pod_added(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.expectations.created(owner)
        self._pod_event(pod)

    def _pod_event(self, pod: Obj) -> None:
        owner = self._owner_key(pod)
        if owner:
            self.queue.add(owner)
            return
        ns = pod["metadata"].get("namespace")
        for sts in self.sets.items():  # an orphan this set may adopt
            if sts["metadata"].get("namespace") == ns and matches_selector(
                    sts["spec"].get("selector"), labels_of(pod)):
                self.enqueue(sts)

    def _pod_changed(self, old: Obj, new: Obj) -> None:
        old_owner = self._owner_key(old)
        if old_owner and old_owner != self._owner_key(new):
            self.queue.add(old_owner)
        self._pod_event(new)

    # -- reconcile ---------------------------------------------------------------

    def _claim(self, sts: Obj) -> dict[int, Obj]:
        """Pods of this set by ordinal (adopting matching orphans named like its pods)."""
        ns, uid, name = (sts["metadata"]["namespace"], sts["metadata"]["uid"],
                         sts["metadata"]["name"])
        out: dict[int, Obj] = {}
        for pod in self.pods.items():
            if pod["metadata"].get("namespace") != ns:
                continue
            ordinal = ordinal_of(name, pod["metadata"]["name"])
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") == uid:
                if ordinal is not None:
                    out[ordinal] = pod
            elif (ref is None and ordinal is not None and not is_deleting(pod)
                  and not is_deleting(sts)
                  and matches_selector(sts["spec"].get("selector"), labels_of(pod))):
                refs = list(pod["metadata"].get("ownerReferences") or [])
                refs.append(owner_ref_to(sts, "StatefulSet", "apps/v1"))
                try:
                    out[ordinal] = self.kube.merge_patch(PODS, ns, pod["metadata"]["name"], {
                        "metadata": {"ownerReferences": refs,
                                     "resourceVersion": pod["metadata"]["resourceVersion"]}})
                except (errors.NotFound, errors.Conflict):
                    continue
        return out

    def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            self.expectations.forget(key)
            return
        pods = self._claim(sts)
        if is_deleting(sts):
            return
        update_rev, _ = revisions.ensure(self.kube, sts, "StatefulSet", self.revs.items())
        status = dict(sts.get("status") or {})
        current_name = status.get("currentRevision") or update_rev["metadata"]["name"]
        current_rev = next((r for r in revisions.owned(sts, self.revs.items())
                            if r["metadata"]["name"] == current_name), update_rev)
        if self.expectations.satisfied(key):
            self._manage(key, sts, pods, current_rev, update_rev)
        self._status(sts, pods, current_name, update_rev["metadata"]["name"])
        keep = {current_name, update_rev["metadata"]["name"]}
        keep |= {_revision_of(p) for p in pods.values()}
        revisions.prune(self.kube, sts, self.revs.items(), keep)

    def _manage(self, key: str, sts: Obj, pods: dict[int, Obj], current_rev: Obj,
                update_rev: Obj) -> None:
        spec = sts["spec"]
        replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        first = start_ordinal(sts)
        wanted = range(first, first + replicas)
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)

        # 1. replicas in ordinal order: create the missing, replace the finished
        for ordinal in wanted:
            pod = pods.get(ordinal)
            if pod is not None and _finished(pod) and not is_deleting(pod):
                self._delete(key, sts, pod)
                return
            if pod is None:
                # pods below the partition stay at the current revision
                rev = update_rev if not rolling or ordinal >= first + partition \
                    else current_rev
                if not rolling:  # OnDelete: new pods take the newest template
                    rev = update_rev
                self._create(key, sts, ordinal, rev)
                if ordered:
                    return
                continue
            if ordered and (is_deleting(pod) or not _running_and_ready(pod)):
                return  # the next ordinal waits for this one
        # 2. condemned pods (scale down), highest ordinal first
        condemned = sorted((o for o in pods if o not in wanted), reverse=True)
        if condemned:
            if ordered and any(not _running_and_ready(p) for p in pods.values()
                               if not is_deleting(p)):
                return
            for ordinal in condemned:
                pod = pods[ordinal]
                if is_deleting(pod):
                    if ordered:
                        return
                    continue
                self._delete(key, sts, pod)
                if ordered:
                    return
            return
        # 3. rolling update: highest ordinal first, one at a time, all others ready
        if not rolling:
            return
        if any(is_deleting(p) or not _running_and_ready(p) for p in pods.values()):
            return
        target = update_rev["metadata"]["name"]
        for ordinal in sorted(wanted, reverse=True):
            if ordinal < first + partition:
                break
            pod = pods.get(ordinal)
            if pod is not None and _revision_of(pod) != target:
                self._delete(key, sts, pod)
                return

    def _create(self, key: str, sts: Obj, ordinal: int, rev: Obj) -> None:
        for template in claim_templates(sts):
            claim = new_claim(sts, template, ordinal)
            try:
                self.kube.create(PVCS, sts["metadata"]["namespace"], claim)
            except errors.AlreadyExists:
                continue  # retained from an earlier pod of this ordinal: reused
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {claim['metadata']['name']} Pod "
                                f"{sts['metadata']['name']}-{ordinal} in StatefulSet "
                                f"{sts['metadata']['name']} success")
        body = new_pod(sts, ordinal, rev)
        self.expectations.expect(key, adds=1)
        try:
            self.kube.create(PODS, sts["metadata"]["namespace"], body)
        except errors.ControllerError as exc:
            self.expectations.creation_failed(key)
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {body['metadata']['name']} in StatefulSet "
                                f"{sts['metadata']['name']} failed error: {exc}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {body['metadata']['name']} in StatefulSet "
                            f"{sts['metadata']['name']} successful")

    def _delete(self, key: str, sts: Obj, pod: Obj) -> None:
        self.expectations.expect(key, deletes={key_of(pod)})
        try:
            self.kube.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                             uid=pod["metadata"]["uid"])
        except errors.NotFound:
            self.expectations.deleted(key, key_of(pod))
            return
        self.expectations.deleted(key, key_of(pod))  # the informer shows the deletion
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {pod['metadata']['name']} in StatefulSet "
                            f"{sts['metadata']['name']} successful")

    def _status(self, sts: Obj, pods: dict[int, Obj], current: str, update: str) -> None:
        live = [p for p in pods.values() if not _finished(p)]
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        at = now()
        replicas = int(sts["spec"].get("replicas", 1) if sts["spec"].get("replicas")
                       is not None else 1)
        ready = sum(1 for p in live if is_pod_ready(p))
        updated = sum(1 for p in live if _revision_of(p) == update)
        current_count = sum(1 for p in live if _revision_of(p) == current)
        # the rollout is done once every replica runs the update revision and is ready
        if updated == replicas and ready == replicas and len(live) == replicas:
            current, current_count = update, updated
        status: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 0),
            "replicas": len(live),
            "readyReplicas": ready,
            "currentReplicas": current_count,
            "updatedReplicas": updated,
            "availableReplicas": sum(1 for p in live if is_pod_available(p, min_ready, at)),
            "currentRevision": current,
            "updateRevision": update,
            "collisionCount": 0,
        }
        old: dict[str, Any] = sts.get("status") or {}
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status != old:
            self.kube.update(STATEFULSETS, dict(sts, status=status), "status")
        if min_ready and status["availableReplicas"] < ready:
            # a ready pod becomes available later: look again then
            self.queue.add_after(key_of(sts), min(float(min_ready), 1.0))
