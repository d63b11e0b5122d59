"""CronJob → Jobs on schedule, as kube-controller-manager's CronJob controller (v2) does it.

Jobs are named `{cronjob}-{scheduled time in minutes since the epoch}` and annotated with
`batch.kubernetes.io/cronjob-scheduled-timestamp`, so a schedule fires once however often the controller looks;
`concurrencyPolicy` (Allow, Forbid, Replace), `suspend`, `startingDeadlineSeconds`, `timeZone` and the two history
limits are honoured, and the status keeps `active`, `lastScheduleTime` and `lastSuccessfulTime`.

Decide, then act: `plan_cronjob` is pure; the controller collects the Jobs, calls it and writes what it says.
"""

from __future__ import annotations

import copy
import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.apiserver.errors import ApiError
from localkube.apiserver.store import DELETED, Event
from localkube.controllers import cron, events
from localkube.controllers.base import Key, KeyedController
from localkube.controllers.jobs import JOB_KEY, condition_of, finished_at
from localkube.controllers.workloads import controller_of, owner_reference, parse_time

Obj = dict[str, Any]

CRONJOB_KEY = ("batch", "cronjobs")
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
COMPONENT = "cronjob-controller"
MISSED_LIMIT = 100


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(moment: dt.datetime) -> str:
    """Go's time.RFC3339: `Z` for UTC, else the offset."""
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_name(cronjob: Mapping[str, Any], scheduled: dt.datetime) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_ref(job: Mapping[str, Any]) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")}


def _started(job: Mapping[str, Any]) -> str:
    return str((job.get("status") or {}).get("startTime") or job["metadata"].get("creationTimestamp") or "")


@dataclass
class CronJobPlan:
    create: dt.datetime | None = None  # the scheduled time of the Job to create now
    delete: list[str] = field(default_factory=list)  # Job names
    status: Obj = field(default_factory=dict)
    recheck_in: float | None = None
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning)


def plan_cronjob(cronjob: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], now: dt.datetime) -> CronJobPlan:
    """Track the CronJob's Jobs (active ones, the last success, history limits), then decide whether the most
    recent scheduled time not yet started should start now."""
    spec = cronjob.get("spec") or {}
    old = cronjob.get("status") or {}
    plan = CronJobPlan()
    running = sorted((j for j in jobs if finished_at(j) is None and not j["metadata"].get("deletionTimestamp")),
                     key=lambda j: (j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]))
    was_active = {ref.get("uid") for ref in old.get("active") or ()}
    status: Obj = {k: v for k, v in old.items() if k in ("lastScheduleTime", "lastSuccessfulTime")}
    for job in jobs:
        if job["metadata"]["uid"] in was_active and finished_at(job) is not None:
            kind = "Complete" if condition_of(job, "Complete") is not None else "Failed"
            plan.events.append(("SawCompletedJob", f"Saw completed job: {job['metadata']['name']}, condition: "
                                                   f"{kind}", False))
        completed = (job.get("status") or {}).get("completionTime")
        if condition_of(job, "Complete") is not None and completed and completed > status.get(
                "lastSuccessfulTime", ""):
            status["lastSuccessfulTime"] = completed
    for kind, limit_key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
        limit = spec.get(limit_key)
        done = sorted((j for j in jobs if condition_of(j, kind) is not None
                       and not j["metadata"].get("deletionTimestamp")), key=_started)
        if limit is not None and len(done) > int(limit):
            plan.delete += [j["metadata"]["name"] for j in done[:len(done) - int(limit)]]
    plan.status = status

    def finish() -> CronJobPlan:
        refs = {ref.get("uid"): ref for ref in old.get("active") or ()}
        active = [refs.get(j["metadata"]["uid"]) or job_ref(j) for j in running
                  if j["metadata"]["name"] not in plan.delete]
        if active:
            status["active"] = active
        return plan

    if spec.get("suspend") or cronjob["metadata"].get("deletionTimestamp"):
        return finish()
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else dt.UTC
        schedule = cron.parse(str(spec.get("schedule") or ""))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        reason = "UnknownTimeZone" if isinstance(err, zoneinfo.ZoneInfoNotFoundError) else "InvalidSchedule"
        plan.events.append((reason, f"invalid schedule: {spec.get('schedule')} : {err}", True))
        return finish()
    local_now = now.astimezone(zone)
    earliest = parse_time(old.get("lastScheduleTime")) or parse_time(cronjob["metadata"].get("creationTimestamp"))
    earliest = (earliest or now).astimezone(zone)
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, local_now - dt.timedelta(seconds=int(deadline)))
    scheduled, missed = schedule.last_until(earliest, local_now, MISSED_LIMIT)
    upcoming = schedule.next_after(local_now)
    if upcoming is not None:
        plan.recheck_in = (upcoming - local_now).total_seconds()
    if missed > MISSED_LIMIT:
        plan.events.append(("TooManyMissedTimes", f"too many missed start times: {missed}. Set or decrease "
                                                  ".spec.startingDeadlineSeconds or check clock skew", True))
    if scheduled is None or any(j["metadata"]["name"] == job_name(cronjob, scheduled) for j in jobs):
        return finish()
    if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < local_now:
        plan.events.append(("MissSchedule", f"Missed scheduled time to start a job: {_rfc3339(scheduled)}", True))
        return finish()
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and running:
        plan.events.append(("JobAlreadyActive", "Not starting job because prior execution is running and "
                                                "concurrency policy is Forbid", False))
        return finish()
    if policy == "Replace":
        plan.delete += [j["metadata"]["name"] for j in running if j["metadata"]["name"] not in plan.delete]
    plan.create = scheduled
    status["lastScheduleTime"] = _utc(scheduled)
    return finish()


def job_from_template(cronjob: Mapping[str, Any], scheduled: dt.datetime) -> Obj:
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {"name": job_name(cronjob, scheduled), "namespace": cronjob["metadata"]["namespace"],
                 "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: _rfc3339(scheduled)},
                 "ownerReferences": [owner_reference(cronjob)]}
    if tmeta.get("labels"):
        meta["labels"] = copy.deepcopy(tmeta["labels"])
    spec = copy.deepcopy(template.get("spec") or {})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


class CronJobController(KeyedController):
    """Starts each CronJob's Jobs on schedule and keeps its status and history."""

    watched = CRONJOB_KEY

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == CRONJOB_KEY:
            return () if event.type == DELETED else ((event.namespace, event.obj["metadata"]["name"]),)
        if event.key == JOB_KEY:
            ref = controller_of(event.obj)
            if ref is not None and ref.get("kind") == "CronJob":
                return ((event.namespace, ref["name"]),)
        return ()

    def sync(self, namespace: str, name: str) -> None:
        cronjob = self.core.store.get(CRONJOB_KEY, namespace, name)
        if cronjob is None:
            return
        uid = cronjob["metadata"]["uid"]
        jobs = [j for j in self.core.store.list(JOB_KEY, namespace) if (controller_of(j) or {}).get("uid") == uid]
        plan = plan_cronjob(cronjob, jobs, self.now())
        job_kind = self.core.kind_of(JOB_KEY)
        for job in plan.delete:
            try:
                self.core.delete(job_kind, namespace, job, propagation="Background")
                events.record(self.core, cronjob, "SuccessfulDelete", f"Deleted job {job}", COMPONENT)
            except ApiError as err:
                if err.code != 404:
                    raise
        status = plan.status
        if plan.create is not None:
            try:
                job = self.core.create(job_kind, namespace, job_from_template(cronjob, plan.create))[0]
            except ApiError as err:
                if err.code != 409:
                    raise
            else:
                status.setdefault("active", []).append(job_ref(job))
                events.record(self.core, cronjob, "SuccessfulCreate", f"Created job {job['metadata']['name']}",
                              COMPONENT)
        for reason, message, warning in plan.events:
            events.record(self.core, cronjob, reason, message, COMPONENT, warning=warning)
        if plan.recheck_in is not None:
            self.sync_later((namespace, name), plan.recheck_in + 0.01)
        if (cronjob.get("status") or {}) != status:
            self.core.mutate(self.core.kind_of(CRONJOB_KEY), namespace, name,
                             lambda o: o.__setitem__("status", copy.deepcopy(status)), subresource="status")
