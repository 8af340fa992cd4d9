"""Job -> Pods run to completion: up to `parallelism` at once until `completions`
succeed (or, without `completions`, until one succeeds and the rest finish); failed
pods (and restarts under `OnFailure`) count against `backoffLimit`. The conditions are
upstream's: `SuccessCriteriaMet` then `Complete`, or `FailureTarget` then `Failed`
(reason `BackoffLimitExceeded`), which `kubectl wait --for=condition=complete` reads."""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

from . import errors
from .base import Context, PodOwnerController
from .kube import JOBS, PODS, Obj
from .machinery import FuncHandler
from .objects import (
    controller_ref,
    is_deleting,
    is_pod_ready,
    key_of,
    now,
    owner_ref_to,
    parse_time,
    timestamp,
)

log = logging.getLogger(__name__)


def _phase(pod: Obj) -> str:
    return str(pod.get("status", {}).get("phase") or "Pending")


def _restarts(pod: Obj) -> int:
    return sum(int(c.get("restartCount") or 0)
               for c in pod.get("status", {}).get("containerStatuses") or [])


def pod_for(job: Obj) -> Obj:
    template = copy.deepcopy(job["spec"].get("template") or {})
    meta = template.get("metadata") or {}
    return {
        "metadata": {"generateName": f"{job['metadata']['name']}-",
                     "namespace": job["metadata"]["namespace"],
                     "labels": meta.get("labels") or {},
                     "annotations": meta.get("annotations") or {},
                     "ownerReferences": [owner_ref_to(job, "Job", "batch/v1")]},
        "spec": template.get("spec") or {},
    }


def finished(job: Obj) -> str | None:
    """"Complete" or "Failed" once the Job has its final condition, else None."""
    for c in job.get("status", {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def _condition(ctype: str, reason: str, message: str, at: str) -> Obj:
    return {"type": ctype, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": at, "lastTransitionTime": at}


class JobController(PodOwnerController):
    owner_kind = "Job"
    name = "job-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.jobs = self.informer(ctx.informers.get(JOBS))
        self.pods = self.informer(ctx.informers.get(PODS))
        self.jobs.add_handler(FuncHandler(add=self.enqueue, update=lambda o, n: self.enqueue(n),
                                          delete=lambda j: self.expectations.forget(key_of(j))))
        self.pods.add_handler(FuncHandler(add=self._pod_added,
                                          update=lambda o, n: self._pod_event(n),
                                          delete=self._pod_event))

    def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            return
        if is_deleting(job):
            return
        if finished(job):
            self._expire(key, job)
            return
        uid = job["metadata"]["uid"]
        pods = [p for p in self.pods.items()
                if p["metadata"].get("namespace") == job["metadata"]["namespace"]
                and (controller_ref(p) or {}).get("uid") == uid]
        spec = job["spec"]
        restart_policy = (spec.get("template") or {}).get("spec", {}).get("restartPolicy")
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")
                  and not is_deleting(p)]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        if restart_policy == "OnFailure":
            failed += sum(_restarts(p) for p in active)
        status: dict[str, Any] = copy.deepcopy(job.get("status") or {})
        at = timestamp()
        suspended = bool(spec.get("suspend"))
        if not suspended and not status.get("startTime"):
            status["startTime"] = at
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None
                          else 1)
        backoff_limit = int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None
                            else 6)
        conditions: list[Obj] = list(status.get("conditions") or [])
        done = (succeeded >= int(completions) if completions is not None
                else succeeded > 0 and not active)
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        overdue = (deadline is not None and started is not None
                   and (now() - started).total_seconds() >= int(deadline))
        if deadline is not None and started is not None and not overdue:
            left = int(deadline) - (now() - started).total_seconds()
            self.queue.add_after(key, max(0.05, left))
        if overdue:
            for pod in active:
                self._delete(key, job, pod)
            active = []
            message = "Job was active longer than specified deadline"
            conditions += [_condition("FailureTarget", "DeadlineExceeded", message, at),
                           _condition("Failed", "DeadlineExceeded", message, at)]
            self.recorder.event(job, "Warning", "DeadlineExceeded", message)
        elif failed > backoff_limit:
            for pod in active:
                self._delete(key, job, pod)
            active = []
            message = "Job has reached the specified backoff limit"
            conditions += [_condition("FailureTarget", "BackoffLimitExceeded", message, at),
                           _condition("Failed", "BackoffLimitExceeded", message, at)]
            self.recorder.event(job, "Warning", "BackoffLimitExceeded", message)
        elif done:
            for pod in active:
                self._delete(key, job, pod)
            active = []
            conditions += [
                _condition("SuccessCriteriaMet", "CompletionsReached",
                           "Reached expected number of succeeded pods", at),
                _condition("Complete", "CompletionsReached",
                           "Reached expected number of succeeded pods", at)]
            status["completionTime"] = at
            self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif self.expectations.satisfied(key):
            want = 0 if suspended else parallelism
            if completions is not None:
                want = min(want, int(completions) - succeeded)
            elif succeeded > 0:
                want = 0  # work-queue job: one success ends it once the others finish
            if len(active) < want:
                self._create(key, job, want - len(active))
            elif len(active) > want:
                for pod in sorted(active, key=lambda p: _phase(p) == "Running")[
                        : len(active) - want]:
                    self._delete(key, job, pod)
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                       "ready": sum(1 for p in active if is_pod_ready(p)), "terminating": 0,
                       "uncountedTerminatedPods": {}})
        for k in ("active", "succeeded", "failed"):
            if not status[k]:
                status.pop(k)  # omitted when zero, as upstream
        if conditions:
            status["conditions"] = conditions
        if status != (job.get("status") or {}):
            self.kube.update(JOBS, dict(job, status=status), "status")

    def _expire(self, key: str, job: Obj) -> None:
        """`ttlSecondsAfterFinished`: delete a finished Job (and its pods) once it passed."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished_at = max((parse_time(c.get("lastTransitionTime")) or now()
                           for c in job.get("status", {}).get("conditions") or []
                           if c.get("type") in ("Complete", "Failed")), default=now())
        left = int(ttl) - (now() - finished_at).total_seconds()
        if left > 0:
            self.queue.add_after(key, left)
            return
        with contextlib.suppress(errors.NotFound):
            self.kube.delete(JOBS, job["metadata"]["namespace"], job["metadata"]["name"],
                             propagation="Background", uid=job["metadata"]["uid"])

    def _create(self, key: str, job: Obj, count: int) -> None:
        self.expectations.expect(key, adds=count)
        body = pod_for(job)
        for made in range(count):
            try:
                pod = self.kube.create(PODS, job["metadata"]["namespace"], copy.deepcopy(body))
            except errors.ControllerError as exc:
                for _ in range(count - made):   # this one and those not attempted
                    self.expectations.creation_failed(key)
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            self.recorder.event(job, "Normal", "SuccessfulCreate",
                                f"Created pod: {pod['metadata']['name']}")

    def _delete(self, key: str, job: Obj, pod: Obj) -> None:
        try:
            self.kube.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                             uid=pod["metadata"]["uid"])
        except errors.NotFound:
            return
        self.recorder.event(job, "Normal", "SuccessfulDelete",
                            f"Deleted pod: {pod['metadata']['name']}")
