"""The DaskJob lifecycle as a pure function: every state x what exists x the time, and that a job always ends."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from dask_kube.naming import ConditionType, JobStatus, Reason
from dask_kube.operator import daskjob
from dask_kube.operator.daskjob import START_TIMEOUT_SECONDS, JobPlan, decide
from dask_kube.status import rfc3339

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
UID = "uid-of-the-job"


def ago(seconds: float) -> str:
    return rfc3339(NOW - dt.timedelta(seconds=seconds))


def job(state: str | None = None, *, created: float = 60, deadline: int | None = None, ttl: int | None = None,
        ended: float | None = None, started: float | None = None, runner_named: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if state:
        status["jobStatus"] = state
    if state not in (None, JobStatus.JOB_CREATED):
        status["clusterName"] = "j"
        if runner_named:
            status["jobRunnerPodName"] = "j-runner"
    if started is not None:
        status["startTime"] = ago(started)
    if ended is not None:
        status["endTime"] = ago(ended)
    spec: dict[str, Any] = {"job": {"spec": {}}, "cluster": {"spec": {}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
            "metadata": {"name": "j", "namespace": "ns", "uid": UID, "generation": 1,
                         "creationTimestamp": ago(created)},
            "spec": spec, "status": status}


def cluster(phase: str = "Running", *, owned: bool = True, not_ready: float | None = None, deleting: bool = False,
            created: float = 50, why: str = "SchedulerCrashLoopBackOff") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "j", "creationTimestamp": ago(created),
                            "ownerReferences": [{"uid": UID if owned else "someone-else", "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    conds = []
    if phase == "Error":
        conds.append({"type": ConditionType.SPEC_VALID, "status": "False", "reason": Reason.INVALID_SPEC,
                      "message": "spec.worker.spec.containers[0].resources: unknown key 'limit'"})
    if not_ready is not None:
        conds.append({"type": ConditionType.SCHEDULER_READY, "status": "False", "reason": why,
                      "message": f"scheduler: {why}", "lastTransitionTime": ago(not_ready)})
    return {"metadata": meta, "status": {"phase": phase, "conditions": conds}}


def runner(phase: str = "Running", *, deleting: bool = False, created: float = 50, unschedulable: bool = False,
           restarts: int = 0, exit_code: int | None = None, owner: str | None = UID) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "j-runner", "creationTimestamp": ago(created),
                            "ownerReferences": [{"uid": owner, "controller": True}] if owner else []}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    status: dict[str, Any] = {"phase": phase, "conditions": [], "containerStatuses": [
        {"name": "job", "restartCount": restarts, "state": {"running": {}}}]}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": "0/1 nodes are available: 1 Insufficient cpu."})
    if exit_code is not None:
        status["containerStatuses"][0]["state"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
    return {"metadata": meta, "status": status}


CREATED, CLUSTER_CREATED, RUNNING = JobStatus.JOB_CREATED, JobStatus.CLUSTER_CREATED, JobStatus.RUNNING


def actions(plan: JobPlan) -> set[str]:
    """The plan's creates and deletes, by what they are to the job."""
    kinds = {"DaskCluster": "cluster", "Pod": "runner"}
    done = {f"create_{kinds[body['kind']]}" for body in plan.create}
    done |= {f"delete_{kinds[d.kind]}" for d in plan.delete}
    return done | ({"delete_job"} if plan.delete_self else set())
SUCCESSFUL, FAILED = JobStatus.SUCCESSFUL, JobStatus.FAILED


@pytest.mark.parametrize(("the_job", "the_cluster", "the_runner", "status", "expected"), [
    pytest.param(job(), None, None, CREATED, set(), id="new-job-says-JobCreated-first"),
    pytest.param(job(CREATED), None, None, CLUSTER_CREATED, {"create_cluster"}, id="creates-the-cluster"),
    pytest.param(job(CREATED), cluster("Pending"), None, CLUSTER_CREATED, set(), id="after-a-crash-finds-its-cluster"),
    pytest.param(job(CLUSTER_CREATED, runner_named=False), cluster("Pending"), None, None, set(),
                 id="runner-waits-for-the-scheduler"),
    pytest.param(job(CLUSTER_CREATED, runner_named=False), cluster("Running"), None, None, {"create_runner"},
                 id="runner-created-once-the-scheduler-answers"),
    pytest.param(job(CREATED), cluster("Running"), None, CLUSTER_CREATED, {"create_runner"},
                 id="cluster-already-running"),
    pytest.param(job(CLUSTER_CREATED), cluster("Pending"), runner("Pending"), None, set(), id="waits-for-runner"),
    pytest.param(job(CLUSTER_CREATED), cluster("Pending"), runner("Running"), RUNNING, set(), id="runner-running"),
    pytest.param(job(RUNNING, started=30), cluster(), runner("Running"), None, set(), id="steady-running"),
    pytest.param(job(RUNNING, started=30), cluster(), runner("Succeeded"), SUCCESSFUL, set(), id="succeeded"),
    pytest.param(job(CLUSTER_CREATED), cluster(), runner("Succeeded"), SUCCESSFUL, set(),
                 id="succeeded-before-seen-running"),
    pytest.param(job(RUNNING), cluster(), runner("Failed", exit_code=1), FAILED, set(), id="failed"),
    pytest.param(job(RUNNING), cluster(), None, FAILED, set(), id="runner-deleted"),
    pytest.param(job(RUNNING), cluster(), runner("Failed", deleting=True, exit_code=143), FAILED, set(),
                 id="runner-being-deleted-is-deleted-not-failed"),
    pytest.param(job(RUNNING), cluster(), runner("Succeeded", deleting=True), SUCCESSFUL, set(),
                 id="completed-runner-being-deleted-still-succeeded"),
    pytest.param(job(RUNNING), None, runner("Running"), FAILED, set(), id="cluster-deleted"),
    pytest.param(job(RUNNING), cluster(deleting=True), runner("Running"), FAILED, set(), id="cluster-deleting"),
    pytest.param(job(CLUSTER_CREATED), cluster("Error"), runner("Running"), FAILED, set(), id="cluster-invalid"),
    pytest.param(job(CLUSTER_CREATED, created=700), cluster("Pending", not_ready=START_TIMEOUT_SECONDS + 1),
                 runner("Running"), FAILED, set(), id="scheduler-never-ready"),
    pytest.param(job(CLUSTER_CREATED), cluster("Pending", not_ready=100), runner("Running"), RUNNING, set(),
                 id="scheduler-starting-is-not-yet-a-failure"),
    pytest.param(job(CLUSTER_CREATED, created=700), cluster(),
                 runner("Pending", unschedulable=True, created=START_TIMEOUT_SECONDS + 1), FAILED, set(),
                 id="runner-unschedulable-too-long"),
    pytest.param(job(RUNNING), cluster(), runner("Running", restarts=daskjob.RUNNER_RESTART_LIMIT), FAILED, set(),
                 id="runner-crash-looping"),
    pytest.param(job(RUNNING, deadline=30), cluster(), runner("Running"), FAILED, set(), id="deadline-exceeded"),
    pytest.param(job(deadline=30), None, None, FAILED, set(), id="deadline-before-anything-started"),
    pytest.param(job(RUNNING, deadline=30), cluster(), runner("Succeeded"), SUCCESSFUL, set(),
                 id="a-result-beats-the-deadline"),
    pytest.param(job(FAILED, ended=1), cluster(), runner("Running"), None, {"delete_cluster", "delete_runner"},
                 id="failed-job-stops-everything"),
    pytest.param(job(SUCCESSFUL, ended=1), cluster(), runner("Succeeded"), None, {"delete_cluster"},
                 id="successful-job-keeps-its-runner"),
    pytest.param(job(SUCCESSFUL, ended=1), None, runner("Succeeded"), None, set(), id="done-and-clean"),
    pytest.param(job(SUCCESSFUL, ended=1), cluster(owned=False), None, None, set(),
                 id="never-deletes-a-cluster-it-does-not-own"),
    pytest.param(job(FAILED, ended=1), cluster(deleting=True), runner("Failed", deleting=True), None, set(),
                 id="deletions-under-way"),
    pytest.param(job(SUCCESSFUL, ended=31, ttl=30), None, runner("Succeeded"), None, {"delete_job"}, id="ttl-expired"),
    pytest.param(job(SUCCESSFUL, ended=10, ttl=30), None, runner("Succeeded"), None, set(), id="ttl-pending"),
])
def test_decide(the_job: dict[str, Any], the_cluster: dict[str, Any] | None, the_runner: dict[str, Any] | None,
                status: str | None, expected: set[str]) -> None:
    decision = decide(the_job, the_cluster, the_runner, NOW)
    assert decision.status.get("jobStatus") == status
    assert actions(decision) == expected


@pytest.mark.parametrize(("the_job", "the_cluster", "the_runner", "reason", "says"), [
    (job(RUNNING), cluster(), runner("Failed", exit_code=1), Reason.JOB_FAILED, "exited with code 1"),
    (job(RUNNING), cluster(), None, Reason.RUNNER_DELETED, "deleted"),
    (job(RUNNING), None, runner(), Reason.CLUSTER_MISSING, "DaskCluster was deleted"),
    (job(RUNNING), cluster("Error"), runner(), Reason.CLUSTER_FAILED, "unknown key 'limit'"),
    (job(RUNNING, created=700), cluster("Pending", not_ready=601), runner(), Reason.CLUSTER_FAILED,
     "SchedulerCrashLoopBackOff"),
    (job(CLUSTER_CREATED, created=700), cluster(), runner("Pending", unschedulable=True, created=601),
     Reason.RUNNER_NOT_STARTED, "Insufficient cpu"),
    (job(RUNNING), cluster(), runner(restarts=9), Reason.BACKOFF_LIMIT_EXCEEDED, "restarted 9 times"),
    (job(RUNNING, deadline=59), cluster(), runner(), Reason.DEADLINE_EXCEEDED, "activeDeadlineSeconds=59"),
])
def test_failures_say_why(the_job: dict[str, Any], the_cluster: dict[str, Any] | None,
                          the_runner: dict[str, Any] | None, reason: str, says: str) -> None:
    decision = decide(the_job, the_cluster, the_runner, NOW)
    assert decision.status == {"jobStatus": FAILED, "endTime": rfc3339(NOW), "observedGeneration": 1}
    assert decision.conditions is not None
    [cond] = decision.conditions
    assert (cond["type"], cond["status"], cond["reason"]) == (ConditionType.JOB_FAILED, "True", reason)
    assert says in cond["message"]
    assert decision.events == [(reason, cond["message"], True)]
    assert decision.requeue == 0  # the next pass cleans up at once


def test_success_is_a_complete_condition_and_a_normal_event() -> None:
    decision = decide(job(RUNNING, started=5), cluster(), runner("Succeeded"), NOW)
    assert decision.status["endTime"] == rfc3339(NOW)
    assert decision.conditions is not None
    assert [(c["type"], c["status"], c["reason"]) for c in decision.conditions] == [
        (ConditionType.JOB_COMPLETE, "True", Reason.JOB_SUCCEEDED)]
    [event] = decision.events
    assert event.warning is False


@pytest.mark.parametrize(("the_job", "the_cluster", "the_runner", "status"), [
    (job(CLUSTER_CREATED, runner_named=False), cluster(), None, {"jobRunnerPodName": "j-runner"}),
    (job(CLUSTER_CREATED, runner_named=False), cluster(), runner("Pending"), {"jobRunnerPodName": "j-runner"}),
    (job(CREATED), None, None, {"jobStatus": CLUSTER_CREATED, "clusterName": "j"}),
    (job(CREATED), cluster(), runner("Running"), {"jobStatus": RUNNING, "clusterName": "j",
                                                  "jobRunnerPodName": "j-runner", "startTime": rfc3339(NOW)}),
])
def test_status_names_the_children(the_job: dict[str, Any], the_cluster: dict[str, Any] | None,
                                   the_runner: dict[str, Any] | None, status: dict[str, Any]) -> None:
    assert decide(the_job, the_cluster, the_runner, NOW).status == status


def test_start_time_is_kept_once_set() -> None:
    decision = decide(job(CLUSTER_CREATED, started=40), cluster(), runner(), NOW)
    assert decision.status == {"jobStatus": RUNNING, "startTime": ago(40)}
    assert decide(job(CLUSTER_CREATED), cluster(), runner(), NOW).status["startTime"] == rfc3339(NOW)


@pytest.mark.parametrize(("the_job", "the_cluster", "the_runner", "requeue"), [
    (job(RUNNING, deadline=100), cluster(), runner(), 40.0),  # created 60 s ago
    (job(RUNNING), cluster("Pending", not_ready=100), runner(), START_TIMEOUT_SECONDS - 100),
    (job(RUNNING, deadline=100), cluster("Pending", not_ready=100), runner(), 40.0),
    (job(CLUSTER_CREATED), cluster(), runner("Pending", created=20), START_TIMEOUT_SECONDS - 20),
    (job(RUNNING), cluster(), runner(), None),
    (job(CLUSTER_CREATED, runner_named=False), cluster("Pending", not_ready=10), None, daskjob.CLUSTER_POLL_SECONDS),
    (job(SUCCESSFUL, ended=10, ttl=30), None, None, 20.0),
    (job(SUCCESSFUL, ended=10), None, None, None),
])
def test_timers_wake_the_loop(the_job: dict[str, Any], the_cluster: dict[str, Any] | None,
                              the_runner: dict[str, Any] | None, requeue: float | None) -> None:
    assert decide(the_job, the_cluster, the_runner, NOW).requeue == requeue


CLUSTERS = {
    "none": None,
    "pending": cluster("Pending", not_ready=0, created=0, why="SchedulerStarting"),
    "crash-looping": cluster("Pending", not_ready=0, created=0),
    "unschedulable": cluster("Pending", not_ready=0, created=0, why="SchedulerUnschedulable"),
    "no-status": {"metadata": {"name": "j", "creationTimestamp": ago(0), "ownerReferences": [{"uid": UID}]}},
    "error": cluster("Error", created=0),
    "running": cluster("Running", created=0),
    "deleting": cluster(deleting=True, created=0),
}
RUNNERS = {
    "none": None,
    "pending": runner("Pending", created=0),
    "unschedulable": runner("Pending", created=0, unschedulable=True),
    "running": runner("Running", created=0),
    "crash-looping": runner("Running", created=0, restarts=50),
    "failed": runner("Failed", created=0, exit_code=2),
    "deleting": runner("Running", created=0, deleting=True),
}


@pytest.mark.parametrize(("state", "cluster_key", "runner_key"), [
    *itertools.product([CLUSTER_CREATED, RUNNING], CLUSTERS, RUNNERS),
    *((CLUSTER_CREATED, c, "not-yet-created") for c in CLUSTERS)])
def test_a_job_that_cannot_progress_fails_within_the_start_timeout(state: str, cluster_key: str,
                                                                   runner_key: str) -> None:
    """Flyte waits for Successful or Failed: after START_TIMEOUT only a healthy job may still be running."""
    later = NOW + dt.timedelta(seconds=START_TIMEOUT_SECONDS + 1)
    created = runner_key != "not-yet-created"
    decision = decide(job(state, created=0, runner_named=created), CLUSTERS[cluster_key],
                      RUNNERS[runner_key] if created else None, later)
    if cluster_key == "running" and runner_key == "running":
        assert decision.status.get("jobStatus") in (None, RUNNING)
    elif cluster_key == "running" and not created:
        assert actions(decision) == {"create_runner"} and decision.status.get("jobStatus") is None
    else:
        assert decision.status.get("jobStatus") == FAILED, (cluster_key, runner_key, decision)


@pytest.mark.parametrize("state", [None, CREATED, CLUSTER_CREATED, RUNNING])
@pytest.mark.parametrize("cluster_key", list(CLUSTERS))
@pytest.mark.parametrize("runner_key", list(RUNNERS))
def test_the_deadline_ends_every_unfinished_job(state: str | None, cluster_key: str, runner_key: str) -> None:
    decision = decide(job(state, created=10, deadline=10), CLUSTERS[cluster_key], RUNNERS[runner_key], NOW)
    assert decision.status.get("jobStatus") == FAILED
    assert decision.conditions is not None and decision.conditions[0]["reason"] in (
        Reason.DEADLINE_EXCEEDED, Reason.JOB_FAILED, Reason.RUNNER_DELETED, Reason.CLUSTER_MISSING)


@pytest.mark.parametrize("cluster_key", list(CLUSTERS))
@pytest.mark.parametrize("runner_key", list(RUNNERS))
def test_a_finished_job_leaves_nothing_running(cluster_key: str, runner_key: str) -> None:
    decision = decide(job(FAILED, ended=1), CLUSTERS[cluster_key], RUNNERS[runner_key], NOW)
    runner_live = runner_key in ("pending", "unschedulable", "running", "crash-looping")
    cluster_live = cluster_key not in ("none", "deleting")
    assert ("delete_runner" in actions(decision), "delete_cluster" in actions(decision)) == (runner_live, cluster_live)
    assert decision.status == {} and not decision.delete_self


# A pod named like this job's runner that this job did not create: a leftover of an earlier job of the same name
# (deleted with --cascade=orphan, or not yet garbage-collected), or somebody else's.
@pytest.mark.parametrize("owner", ["uid-of-an-earlier-job", None])
@pytest.mark.parametrize(("the_job", "phase"), [
    (job(CLUSTER_CREATED, runner_named=False), "Succeeded"),  # would decide the new job's outcome
    (job(CLUSTER_CREATED, runner_named=False), "Failed"),
    (job(CLUSTER_CREATED, runner_named=False), "Running"),  # would be taken for this job's runner
])
def test_a_runner_pod_this_job_does_not_own_is_reported_and_replaced(the_job: dict[str, Any], phase: str,
                                                                      owner: str | None) -> None:
    foreign = runner(phase, owner=owner, exit_code=1 if phase == "Failed" else None)
    plan = decide(the_job, cluster("Running"), foreign, NOW)
    assert plan.status.get("jobStatus") in (None, the_job["status"]["jobStatus"])  # decided nothing from it
    assert "startTime" not in plan.status or the_job["status"].get("startTime")
    assert actions(plan) == {"delete_runner"}
    assert [(e.reason, e.warning) for e in plan.events] == [(Reason.RUNNER_NOT_OWNED, True)]
    assert "j-runner" in plan.events[0].message and plan.requeue is not None
    # Once it is going, the job waits for the name to be free, then creates its own runner.
    going = runner(phase, owner=owner, deleting=True)
    waiting = decide(the_job, cluster("Running"), going, NOW)
    assert actions(waiting) == set() and not waiting.events and waiting.requeue is not None
    assert waiting.status.get("jobStatus") in (None, the_job["status"]["jobStatus"])
    assert actions(decide(job(CLUSTER_CREATED, runner_named=False), cluster("Running"), None, NOW)) == \
        {"create_runner"}


def test_a_running_job_whose_runner_was_replaced_by_a_foreign_pod_lost_its_runner() -> None:
    plan = decide(job(RUNNING, started=5), cluster("Running"), runner("Succeeded", owner="uid-of-an-earlier-job"),
                  NOW)
    assert plan.status["jobStatus"] == FAILED and plan.events[0].reason == Reason.RUNNER_DELETED
