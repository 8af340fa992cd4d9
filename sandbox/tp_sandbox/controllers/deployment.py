"""Deployment -> ReplicaSets, following the upstream controller: one ReplicaSet per
pod template (`<deployment>-<pod-template-hash>`), rolling updates within
maxSurge/maxUnavailable or Recreate, scaling (proportional during a rollout),
revision history cleanup, and the status `kubectl rollout status` reads."""

from __future__ import annotations

import contextlib
import copy
import logging

from . import deployutil as du
from . import errors
from .base import Context, Controller
from .kube import DEPLOYMENTS, PODS, REPLICASETS, Obj
from .machinery import FuncHandler
from .objects import (
    controller_ref,
    is_deleting,
    labels_of,
    matches_selector,
    now,
    owner_ref_to,
    parse_time,
)

log = logging.getLogger(__name__)


def _created(rs: Obj) -> tuple[str, str]:
    return rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]


class DeploymentController(Controller):
    name = "deployment-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deps = self.informer(ctx.informers.get(DEPLOYMENTS))
        self.rss = self.informer(ctx.informers.get(REPLICASETS))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.deps.add_handler(FuncHandler(add=self.enqueue, update=lambda o, n: self.enqueue(n),
                                          delete=self.enqueue))
        self.rss.add_handler(FuncHandler(add=self._rs_changed,
                                         update=lambda o, n: self._rs_changed(n, o),
                                         delete=self._rs_changed))
        self.pods.add_handler(FuncHandler(delete=self._pod_deleted))

    # -- event handlers -----------------------------------------------------------

    def _rs_changed(self, rs: Obj, old: Obj | None = None) -> None:
        ns = rs["metadata"].get("namespace")
        for obj in (rs, old):
            ref = controller_ref(obj) if obj else None
            if ref and ref.get("kind") == "Deployment":
                self.queue.add(f"{ns}/{ref['name']}")
        if controller_ref(rs) is None:
            for d in self.deps.items():
                if d["metadata"].get("namespace") == ns and matches_selector(
                        d["spec"].get("selector"), labels_of(rs)):
                    self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        # Recreate waits for old pods to be gone
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.rss.get(f"{pod['metadata'].get('namespace')}/{ref['name']}")
            if rs is not None:
                self._rs_changed(rs)

    # -- helpers --------------------------------------------------------------------

    def _claim(self, d: Obj) -> list[Obj]:
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        selector = d["spec"].get("selector")
        out = []
        for rs in self.rss.items():
            if rs["metadata"].get("namespace") != ns:
                continue
            ref = controller_ref(rs)
            matches = matches_selector(selector, labels_of(rs))
            if ref is not None and ref.get("uid") == uid:
                if matches or is_deleting(d):
                    out.append(copy.deepcopy(rs))
                else:  # release: labels changed under us
                    refs = [r for r in rs["metadata"].get("ownerReferences") or []
                            if r.get("uid") != uid]
                    self.kube.merge_patch(REPLICASETS, ns, rs["metadata"]["name"], {
                        "metadata": {"ownerReferences": refs or None,
                                     "resourceVersion": rs["metadata"]["resourceVersion"]}})
            elif ref is None and matches and not is_deleting(rs) and not is_deleting(d):
                refs = list(rs["metadata"].get("ownerReferences") or [])
                refs.append(owner_ref_to(d, "Deployment", "apps/v1"))
                out.append(self.kube.merge_patch(REPLICASETS, ns, rs["metadata"]["name"], {
                    "metadata": {"ownerReferences": refs,
                                 "resourceVersion": rs["metadata"]["resourceVersion"]}}))
        return out

    def _write_status(self, d: Obj, status: Obj) -> Obj:
        if status == (d.get("status") or {}):
            return d
        return self.kube.update(DEPLOYMENTS, dict(d, status=status), "status")

    def _set_revision(self, d: Obj, revision: str) -> Obj:
        ann = d["metadata"].get("annotations") or {}
        if ann.get(du.REVISION) == revision:
            return d
        patched = self.kube.merge_patch(DEPLOYMENTS, d["metadata"]["namespace"],
                                        d["metadata"]["name"],
                                        {"metadata": {"annotations": {du.REVISION: revision}}})
        # keep the status we are computing; only metadata moved on
        return dict(patched, status=d.get("status") or {})

    def _replica_annotations(self, d: Obj) -> dict[str, str]:
        desired = du.replicas_of(d)
        return {du.DESIRED_REPLICAS: str(desired),
                du.MAX_REPLICAS: str(desired + du.max_surge(d))}

    def _scale_rs(self, d: Obj, rs: Obj, new_scale: int) -> tuple[bool, Obj]:
        """Set replicas and the replica annotations; records ScalingReplicaSet."""
        old_scale = du.replicas_of(rs)
        ann = dict(rs["metadata"].get("annotations") or {})
        wanted = self._replica_annotations(d)
        size_changes = old_scale != new_scale
        if not size_changes and all(ann.get(k) == v for k, v in wanted.items()):
            return False, rs
        ann.update(wanted)
        body = copy.deepcopy(rs)
        body["metadata"]["annotations"] = ann
        body["spec"]["replicas"] = new_scale
        updated = self.kube.update(REPLICASETS, body)
        if size_changes:
            op = "up" if new_scale > old_scale else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {rs['metadata']['name']} "
                                f"from {old_scale} to {new_scale}")
        return size_changes, updated

    def _deadline(self, d: Obj) -> int | None:
        return du.progress_deadline(d, self.settings.progress_deadline_default)

    # -- new / old ReplicaSets --------------------------------------------------------

    def _all_rss(self, d: Obj, rss: list[Obj], create: bool
                 ) -> tuple[Obj, Obj | None, list[Obj]]:
        """(deployment, new RS or None, old RSs), syncing revisions (upstream
        getAllReplicaSetsAndSyncRevision)."""
        new = du.find_new_rs(d, rss)
        old = [rs for rs in rss if new is None or rs["metadata"]["uid"] != new["metadata"]["uid"]]
        new_revision = str(du.max_revision(old) + 1)
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        if new is not None:
            ann = dict(new["metadata"].get("annotations") or {})
            wanted = dict(ann)
            if du.revision_of(new) < int(new_revision):
                wanted[du.REVISION] = new_revision
            wanted.update(self._replica_annotations(d))
            if wanted != ann:
                patched = copy.deepcopy(new)
                patched["metadata"]["annotations"] = wanted
                new = self.kube.update(REPLICASETS, patched)
            d = self._set_revision(d, str(du.revision_of(new)))
            status = copy.deepcopy(d.get("status") or {})
            if self._deadline(d) is not None and du.get_condition(status, "Progressing") is None:
                du.set_condition(status, du.new_condition(
                    "Progressing", "True", du.FOUND_NEW_RS,
                    f'Found new replica set "{new["metadata"]["name"]}"', now()))
                d = self._write_status(d, status)
            return d, new, old
        if not create:
            return d, None, old
        collision = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(d["spec"]["template"])
        h = du.template_hash(template, collision)
        template.setdefault("metadata", {}).setdefault("labels", {})[du.HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[du.HASH_LABEL] = h
        rs_name = f"{name}-{h}"
        replicas = du.new_rs_new_replicas(d, old, {"spec": {"replicas": 0}})
        annotations = du.rs_annotations_from(d)
        annotations[du.REVISION] = new_revision
        annotations.update(self._replica_annotations(d))
        body: Obj = {
            "metadata": {"name": rs_name, "namespace": ns,
                         "labels": dict(template["metadata"]["labels"]),
                         "annotations": annotations,
                         "ownerReferences": [owner_ref_to(d, "Deployment", "apps/v1")]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0)},
        }
        try:
            new = self.kube.create(REPLICASETS, ns, body)
        except errors.AlreadyExists:
            existing = self.kube.get(REPLICASETS, ns, rs_name)
            ref = controller_ref(existing)
            if ref and ref.get("uid") == d["metadata"]["uid"] and du.equal_ignore_hash(
                    existing["spec"]["template"], d["spec"]["template"]):
                return d, existing, old  # our own, not yet in the cache
            # a real hash collision: bump collisionCount and try another name
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(collision or 0) + 1
            self._write_status(d, status)
            raise
        if replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {rs_name} from 0 to {replicas}")
        d = self._set_revision(d, new_revision)
        status = copy.deepcopy(d.get("status") or {})
        if self._deadline(d) is not None:
            du.set_condition(status, du.new_condition(
                "Progressing", "True", du.NEW_RS_CREATED,
                f'Created new replica set "{rs_name}"', now()))
        d = self._write_status(d, status)
        return d, new, old

    # -- sync ------------------------------------------------------------------------

    def sync(self, key: str) -> None:
        cached = self.deps.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        sel = d["spec"].get("selector") or {}
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector "
                                "is required.")
            status = dict(d.get("status") or {},
                          observedGeneration=d["metadata"].get("generation", 0))
            self._write_status(d, status)
            return
        rss = self._claim(d)
        if is_deleting(d):
            d, new, old = self._all_rss(d, rss, create=False)
            self._sync_status(d, old + ([new] if new else []), new)
            return
        if d["spec"].get("paused") or self._is_scaling_event(d, rss):
            self._sync_scale(d, rss)
            return
        if du.is_rolling(d):
            self._rollout_rolling(d, rss)
        else:
            self._rollout_recreate(d, rss)

    def _is_scaling_event(self, d: Obj, rss: list[Obj]) -> bool:
        new = du.find_new_rs(d, rss)
        if new is None:
            return False
        desired = str(du.replicas_of(d))
        for rs in rss:
            if du.replicas_of(rs) > 0:
                ann = (rs["metadata"].get("annotations") or {}).get(du.DESIRED_REPLICAS)
                if ann is not None and ann != desired:
                    return True
        return False

    def _sync_status(self, d: Obj, all_rss: list[Obj], new: Obj | None) -> None:
        self._write_status(d, du.calculate_status(d, all_rss, new, now()))

    def _sync_scale(self, d: Obj, rss: list[Obj]) -> None:
        d, new, old = self._all_rss(d, rss, create=False)
        new, old = self._scale(d, new, old)
        all_rss = old + ([new] if new else [])
        if du.deployment_complete(d, d.get("status") or {}) and not d["spec"].get("paused"):
            self._cleanup(d, old)
        self._sync_status(d, all_rss, new)

    def _scale(self, d: Obj, new: Obj | None, old: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """Upstream `scale`: one active ReplicaSet takes the new size; a saturated new
        one drains the old; otherwise the difference is spread proportionally."""
        desired = du.replicas_of(d)
        everything = old + ([new] if new else [])
        active = [rs for rs in everything if du.replicas_of(rs) > 0]
        target: Obj | None = None
        if len(active) == 1:
            target = active[0]
        elif not active:
            target = new if new is not None else (max(old, key=_created) if old else None)
        if target is not None:
            _, scaled = self._scale_rs(d, target, desired)
            return self._replace(new, old, scaled)
        if not active:
            return new, old
        if new is not None and du.replicas_of(new) == desired and int(
                new.get("status", {}).get("availableReplicas") or 0) == desired:
            for rs in [rs for rs in old if du.replicas_of(rs) > 0]:
                _, scaled = self._scale_rs(d, rs, 0)
                new, old = self._replace(new, old, scaled)
            return new, old
        if du.is_rolling(d):
            allowed = desired + du.max_surge(d) if desired > 0 else 0
            to_add = allowed - sum(du.replicas_of(rs) for rs in active)
            sizes = du.proportions(d, active, to_add)
            for rs in active:
                _, scaled = self._scale_rs(d, rs, sizes[rs["metadata"]["name"]])
                new, old = self._replace(new, old, scaled)
        return new, old

    @staticmethod
    def _replace(new: Obj | None, old: list[Obj], rs: Obj) -> tuple[Obj | None, list[Obj]]:
        uid = rs["metadata"]["uid"]
        if new is not None and new["metadata"]["uid"] == uid:
            return rs, old
        return new, [rs if o["metadata"]["uid"] == uid else o for o in old]

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        if d["spec"].get("revisionHistoryLimit") is None:
            d = dict(d, spec=dict(d["spec"],
                                  revisionHistoryLimit=self.settings.revision_history_limit_default))
        for rs in du.cleanup_candidates(d, old):
            with contextlib.suppress(errors.NotFound):
                self.kube.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"],
                                 uid=rs["metadata"]["uid"])

    def _sync_rollout_status(self, d: Obj, all_rss: list[Obj], new: Obj | None) -> None:
        at = now()
        deadline = self._deadline(d)
        status = du.rollout_status(d, all_rss, new, deadline, at)
        if status == (d.get("status") or {}):
            # stuck? come back when the progress deadline would pass
            cond = du.get_condition(status, "Progressing")
            if deadline is not None and cond is not None and not du.deployment_complete(
                    d, status) and cond.get("reason") != du.TIMED_OUT:
                since = parse_time(cond.get("lastUpdateTime"))
                if since is not None:
                    after = (since - at).total_seconds() + deadline + 1
                    self.queue.add_after(f"{d['metadata']['namespace']}/{d['metadata']['name']}",
                                         max(1.0, after))
            return
        self._write_status(d, status)

    def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        d, new, old = self._all_rss(d, rss, create=True)
        assert new is not None
        desired = du.replicas_of(d)
        # scale up the new ReplicaSet as far as maxSurge allows
        if du.replicas_of(new) != desired:
            target = desired if du.replicas_of(new) > desired else du.new_rs_new_replicas(
                d, [*old, new], new)
            scaled, new = self._scale_rs(d, new, target)
            if scaled:
                self._sync_rollout_status(d, [*old, new], new)
                return
        # then scale down old ones as far as maxUnavailable allows
        scaled_down, old = self._reconcile_old(d, old, new)
        if scaled_down:
            self._sync_rollout_status(d, [*old, new], new)
            return
        if du.deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, [*old, new], new)

    def _reconcile_old(self, d: Obj, old: list[Obj], new: Obj) -> tuple[bool, list[Obj]]:
        if sum(du.replicas_of(rs) for rs in old) == 0:
            return False, old
        budget = du.max_scaled_down(d, [*old, new], new)
        if budget <= 0:
            return False, old
        total = 0
        # first the unhealthy replicas of old ReplicaSets, oldest first
        for rs in sorted(old, key=_created):
            if total >= budget:
                break
            size = du.replicas_of(rs)
            unhealthy = size - int(rs.get("status", {}).get("availableReplicas") or 0)
            if size == 0 or unhealthy <= 0:
                continue
            down = min(budget - total, unhealthy)
            _, scaled = self._scale_rs(d, rs, size - down)
            _, old = self._replace(None, old, scaled)
            total += down
        # then available ones, keeping the minimum available
        budget2 = du.old_scale_down_budget(d, [*old, new])
        total2 = 0
        for rs in sorted(old, key=_created):
            if total2 >= budget2:
                break
            size = du.replicas_of(rs)
            if size == 0:
                continue
            down = min(size, budget2 - total2)
            _, scaled = self._scale_rs(d, rs, size - down)
            _, old = self._replace(None, old, scaled)
            total2 += down
        return total + total2 > 0, old

    def _rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        d, new, old = self._all_rss(d, rss, create=False)
        scaled = False
        for rs in [rs for rs in old if du.replicas_of(rs) > 0]:
            changed, updated = self._scale_rs(d, rs, 0)
            _, old = self._replace(None, old, updated)
            scaled = scaled or changed
        all_rss = old + ([new] if new else [])
        if scaled:
            self._sync_rollout_status(d, all_rss, new)
            return
        if self._old_pods_running(old):
            self._sync_rollout_status(d, all_rss, new)
            return
        if new is None:
            d, new, old = self._all_rss(d, rss, create=True)
            assert new is not None
        if du.replicas_of(new) != du.replicas_of(d):
            _, new = self._scale_rs(d, new, du.replicas_of(d))
        if du.deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, [*old, new], new)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        if any(int(rs.get("status", {}).get("replicas") or 0) > 0 for rs in old):
            return True
        uids = {rs["metadata"]["uid"] for rs in old}
        for pod in self.pods.items():
            ref = controller_ref(pod)
            if ref and ref.get("uid") in uids and pod.get("status", {}).get("phase") not in (
                    "Succeeded", "Failed"):
                return True
        return False
