"""CronJob -> Jobs on its cron `schedule` (parsed by croniter, in UTC or `timeZone`):
at each due time a Job `<cronjob>-<minutes since the epoch>` from `jobTemplate`;
`concurrencyPolicy` Allow/Forbid/Replace; finished Jobs beyond the history limits are
deleted; `status.active`, `lastScheduleTime`, `lastSuccessfulTime` as upstream."""

from __future__ import annotations

import copy
import datetime
import logging
import zoneinfo
from typing import Any

from croniter import croniter  # type: ignore[import-untyped]

from . import errors
from .base import Context, Controller
from .job import finished
from .kube import CRONJOBS, JOBS, Obj
from .machinery import FuncHandler
from .objects import controller_ref, is_deleting, now, owner_ref_to, parse_time, timestamp

log = logging.getLogger(__name__)

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def next_time(schedule: str, after: datetime.datetime, tz: str | None) -> datetime.datetime:
    """The first time strictly after `after` that `schedule` names."""
    zone: datetime.tzinfo = zoneinfo.ZoneInfo(tz) if tz else datetime.UTC
    start = after.astimezone(zone)
    nxt: datetime.datetime = croniter(schedule, start).get_next(datetime.datetime)
    return nxt.astimezone(datetime.UTC)


def job_name(cj: Obj, at: datetime.datetime) -> str:
    return f"{cj['metadata']['name']}-{int(at.timestamp()) // 60}"


def job_from(cj: Obj, at: datetime.datetime, name: str) -> Obj:
    template = copy.deepcopy(cj["spec"].get("jobTemplate") or {})
    meta = template.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations[SCHEDULED_ANNOTATION] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "namespace": cj["metadata"]["namespace"],
                         "labels": meta.get("labels") or {}, "annotations": annotations,
                         "ownerReferences": [owner_ref_to(cj, "CronJob", "batch/v1")]},
            "spec": template.get("spec") or {}}


def _ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "apiVersion": "batch/v1", "namespace": meta["namespace"],
            "name": meta["name"], "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion")}


class CronJobController(Controller):
    name = "cronjob-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cronjobs = self.informer(ctx.informers.get(CRONJOBS))
        self.jobs = self.informer(ctx.informers.get(JOBS))
        self.cronjobs.add_handler(FuncHandler(add=self.enqueue,
                                              update=lambda o, n: self.enqueue(n)))
        self.jobs.add_handler(FuncHandler(add=self._job_event,
                                          update=lambda o, n: self._job_event(n),
                                          delete=self._job_event))

    def _job_event(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata']['namespace']}/{ref['name']}")

    def sync(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None or is_deleting(cj):
            return
        ns, uid = cj["metadata"]["namespace"], cj["metadata"]["uid"]
        spec = cj["spec"]
        jobs = sorted((j for j in self.jobs.items() if j["metadata"].get("namespace") == ns
                       and (controller_ref(j) or {}).get("uid") == uid),
                      key=lambda j: j["metadata"].get("creationTimestamp") or "")
        status: dict[str, Any] = copy.deepcopy(cj.get("status") or {})
        active = [j for j in jobs if not finished(j) and not is_deleting(j)]
        for j in jobs:
            if finished(j) == "Complete":
                done_at = j.get("status", {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done_at and (not last or done_at > last):
                    status["lastSuccessfulTime"] = done_at
                    self.recorder.event(cj, "Normal", "SawCompletedJob",
                                        f"Saw completed job: {j['metadata']['name']}, "
                                        "status: Complete")
        t = now()
        try:
            since = (parse_time(status.get("lastScheduleTime"))
                     or parse_time(cj["metadata"].get("creationTimestamp")) or t)
            due = next_time(str(spec.get("schedule", "")), since, spec.get("timeZone"))
        except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError) as exc:
            self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            return
        if due <= t and not spec.get("suspend"):
            # missed several runs: start only the most recent, as upstream does
            while (after := next_time(str(spec["schedule"]), due, spec.get("timeZone"))) <= t:
                due = after
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Forbid" and active:
                self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                    "Not starting job because prior execution is running "
                                    "and concurrency policy is Forbid")
            else:
                if policy == "Replace":
                    for j in active:
                        self._delete(cj, j)
                    active = []
                name = job_name(cj, due)
                try:
                    job = self.kube.create(JOBS, ns, job_from(cj, due, name))
                    self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
                except errors.AlreadyExists:
                    job = self.kube.get(JOBS, ns, name)
                active.append(job)
            status["lastScheduleTime"] = timestamp(due)
        status["active"] = [_ref(j) for j in active] or None
        if status["active"] is None:
            status.pop("active")
        self._prune(cj, jobs)
        if status != (cj.get("status") or {}):
            self.kube.update(CRONJOBS, dict(cj, status=status), "status")
        # wake up at the next due time
        nxt = next_time(str(spec["schedule"]), t, spec.get("timeZone"))
        self.queue.add_after(key, max(0.05, (nxt - now()).total_seconds() + 0.05))

    def _prune(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj["spec"]
        for state, limit_key, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                          ("Failed", "failedJobsHistoryLimit", 1)):
            limit = spec.get(limit_key)
            limit = default if limit is None else int(limit)
            done = [j for j in jobs if finished(j) == state and not is_deleting(j)]
            for j in done[: max(0, len(done) - limit)]:
                self._delete(cj, j)

    def _delete(self, cj: Obj, job: Obj) -> None:
        try:
            self.kube.delete(JOBS, job["metadata"]["namespace"], job["metadata"]["name"],
                             propagation="Background")
        except errors.NotFound:
            return
        self.recorder.event(cj, "Normal", "SuccessfulDelete",
                            f"Deleted job {job['metadata']['name']}")
