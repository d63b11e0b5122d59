"""The Job controller's decisions, without a server: counting, success and failure, pods to create or delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from localkube.controllers.jobs import (
    BACKOFF_CAP,
    TRACKING_FINALIZER,
    backoff_remaining,
    format_indexes,
    job_pod,
    parse_indexes,
    plan_job,
)

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
STAMP = "2025-01-01T12:00:00Z"


def _ago(seconds: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "template": {"metadata": {"labels": {"job-name": "pi"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "ns", "uid": "job-uid"}, "spec": base, "status": status or {}}


def pod(name: str, phase: str = "Running", *, index: int | None = None, tracked: bool = True, ready: bool = False,
        deleting: bool = False, finished: float = 60, restarts: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": _ago(300)}
    if tracked:
        meta["finalizers"] = [TRACKING_FINALIZER]
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = _ago(0)
        meta["deletionGracePeriodSeconds"] = 30
    container: dict[str, Any] = {"name": "c", "restartCount": restarts, "state": {"running": {}}}
    if phase in ("Succeeded", "Failed"):
        container["state"] = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                             "finishedAt": _ago(finished)}}
    return {"metadata": meta, "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "containerStatuses": [container],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": _ago(finished)}]}}


def conditions(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in status.get("conditions") or ()]


def test_a_new_job_starts_one_pod_and_its_clock() -> None:
    plan = plan_job(job(), [], NOW)
    assert (plan.create, plan.delete, plan.release) == ([None], [], [])
    assert plan.status == {"active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                           "startTime": STAMP}


@pytest.mark.parametrize(("spec", "pods", "old_status", "creates", "deletes"), [
    # min(parallelism, remaining completions) active pods
    ({"completions": 5, "parallelism": 3}, [pod("a"), pod("b")], {"succeeded": 1}, 1, []),
    ({"completions": 5, "parallelism": 3}, [pod("a"), pod("b")], {"succeeded": 3}, 0, []),
    ({"completions": 5, "parallelism": 3}, [pod("a", ready=True), pod("b"), pod("c")], {"succeeded": 3}, 0, ["b"]),
    # a work queue (no completions): parallelism pods until one succeeds, then none new
    ({"completions": None, "parallelism": 3}, [pod("a")], {}, 2, []),
    ({"completions": None, "parallelism": 3}, [pod("a")], {"succeeded": 1}, 0, []),
    # a terminating pod is replaced at once (TerminatingOrFailed) or only once it is gone (Failed)
    ({}, [pod("a", deleting=True)], {}, 1, []),
    ({"podReplacementPolicy": "Failed"}, [pod("a", deleting=True)], {}, 0, []),
    # suspended: no pods at all
    ({"suspend": True, "parallelism": 2, "completions": 4}, [pod("a"), pod("b")], {}, 0, ["a", "b"]),
])
def test_active_pods_follow_parallelism_and_completions(spec: dict[str, Any], pods: list[dict[str, Any]],
                                                        old_status: dict[str, Any], creates: int,
                                                        deletes: list[str]) -> None:
    plan = plan_job(job(old_status, **spec), pods, NOW)
    assert (len(plan.create), plan.delete) == (creates, deletes)


def test_finished_pods_are_counted_once_through_the_tracking_finalizer() -> None:
    pods = [pod("ok", "Succeeded"), pod("bad", "Failed", finished=100), pod("old", "Succeeded", tracked=False),
            pod("run")]
    plan = plan_job(job({"succeeded": 1, "startTime": _ago(500)}, completions=5, parallelism=2), pods, NOW)
    assert sorted(plan.release) == ["bad", "ok"]
    assert (plan.status["succeeded"], plan.status["failed"]) == (2, 1)
    assert plan.create == [None]  # the last failure was 100 s ago, past the 10 s back-off
    assert plan.status["startTime"] == _ago(500)


def test_a_pod_deleted_while_running_is_released_without_counting_as_failed() -> None:
    gone = pod("a", deleting=True)
    gone["metadata"]["deletionGracePeriodSeconds"] = 0  # its kubelet has finished with it
    plan = plan_job(job(), [gone], NOW)
    assert plan.release == ["a"]
    assert "failed" not in plan.status and plan.create == [None]


def test_success_criteria_then_complete_once_no_pod_runs() -> None:
    plan = plan_job(job({"startTime": _ago(30)}), [pod("a", "Succeeded")], NOW)
    assert conditions(plan.status) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                       ("Complete", "True", "CompletionsReached")]
    complete = plan.status["conditions"][1]
    assert complete["message"] == "Reached expected number of succeeded pods"
    assert plan.status["completionTime"] == STAMP and plan.status["succeeded"] == 1
    assert plan.events == [("Completed", "Job completed", False)]
    assert (plan.create, plan.delete, plan.release) == ([], [], ["a"])


def test_a_work_queue_completes_when_one_pod_succeeded_and_the_rest_ended() -> None:
    spec = {"completions": None, "parallelism": 2}
    plan = plan_job(job({"startTime": _ago(30)}, **spec), [pod("a", "Succeeded"), pod("b")], NOW)
    assert conditions(plan.status) == [] and plan.status["active"] == 1
    plan = plan_job(job({"startTime": _ago(30), "succeeded": 1}, **spec),
                    [pod("a", "Succeeded", tracked=False), pod("b", "Succeeded")], NOW)
    assert [c[0] for c in conditions(plan.status)] == ["SuccessCriteriaMet", "Complete"]
    assert plan.status["succeeded"] == 2


def test_backoff_limit_exceeded_fails_the_job_after_its_pods_are_gone() -> None:
    plan = plan_job(job({"startTime": _ago(30)}, backoffLimit=0, parallelism=2, completions=2),
                    [pod("a", "Failed"), pod("b", ready=True)], NOW)
    assert conditions(plan.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    assert (plan.delete, plan.create) == (["b"], [])
    assert (plan.status["failed"], plan.status["terminating"], plan.status.get("active")) == (1, 1, None)
    later = job(plan.status, backoffLimit=0, parallelism=2, completions=2)
    gone = pod("b", deleting=True)
    gone["metadata"]["deletionGracePeriodSeconds"] = 0
    plan = plan_job(later, [pod("a", "Failed", tracked=False), gone], NOW)
    assert conditions(plan.status) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                       ("Failed", "True", "BackoffLimitExceeded")]
    assert plan.status["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert plan.status["failed"] == 2  # a pod killed because the job failed counts as failed
    assert "completionTime" not in plan.status
    assert plan.events == [("BackoffLimitExceeded", "Job has reached the specified backoff limit", True)]


def test_failures_back_off_before_the_next_pod() -> None:
    plan = plan_job(job({"startTime": _ago(30)}, backoffLimit=3), [pod("a", "Failed", finished=4)], NOW)
    assert plan.create == [] and plan.recheck_in == pytest.approx(6)
    assert conditions(plan.status) == []


def test_restarts_under_on_failure_count_toward_the_backoff_limit() -> None:
    spec = job({"startTime": _ago(30)}, backoffLimit=2)
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert conditions(plan_job(spec, [pod("a", restarts=1)], NOW).status) == []
    assert conditions(plan_job(spec, [pod("a", restarts=2)], NOW).status) == [
        ("FailureTarget", "True", "BackoffLimitExceeded")]


def test_active_deadline() -> None:
    plan = plan_job(job({"startTime": _ago(4)}, activeDeadlineSeconds=10), [pod("a")], NOW)
    assert conditions(plan.status) == [] and plan.recheck_in == pytest.approx(6)
    plan = plan_job(job({"startTime": _ago(10)}, activeDeadlineSeconds=10), [pod("a")], NOW)
    assert conditions(plan.status) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert plan.status["conditions"][0]["message"] == "Job was active longer than specified deadline"
    assert plan.delete == ["a"]


def test_indexed_jobs_run_each_missing_index_once() -> None:
    spec = {"completionMode": "Indexed", "completions": 5, "parallelism": 2}
    assert plan_job(job(**spec), [], NOW).create == [0, 1]
    duplicate = pod("dup", index=2)
    duplicate["metadata"]["creationTimestamp"] = _ago(1)  # the older pod of an index stays
    pods = [pod("p0", "Succeeded", index=0), pod("p2", index=2), duplicate, pod("p9", index=9)]
    plan = plan_job(job({"completedIndexes": "1", "succeeded": 1, "startTime": _ago(9)}, **spec), pods, NOW)
    assert plan.status["completedIndexes"] == "0-1" and plan.status["succeeded"] == 2
    assert sorted(plan.delete) == ["dup", "p9"]
    assert plan.create == [3]
    done = job({"completedIndexes": "0-3", "succeeded": 4, "startTime": _ago(9)}, **spec)
    plan = plan_job(done, [pod("p4", "Succeeded", index=4)], NOW)
    assert plan.status["completedIndexes"] == "0-4"
    assert [c[0] for c in conditions(plan.status)] == ["SuccessCriteriaMet", "Complete"]


def test_suspend_and_resume() -> None:
    plan = plan_job(job({"startTime": _ago(60)}, suspend=True), [pod("a")], NOW)
    assert conditions(plan.status) == [("Suspended", "True", "JobSuspended")]
    assert plan.delete == ["a"] and plan.create == []
    resumed = job(plan.status, suspend=False)
    plan = plan_job(resumed, [], NOW)
    assert conditions(plan.status) == [("Suspended", "False", "JobResumed")]
    assert plan.status["startTime"] == STAMP and plan.create == [None]
    assert plan_job(job(suspend=True), [], NOW).status.get("startTime") is None


def test_a_finished_job_lets_go_of_its_remaining_pods() -> None:
    status = {"conditions": [{"type": "Failed", "status": "True"}], "failed": 1}
    plan = plan_job(job(status), [pod("a"), pod("b", "Failed", tracked=False)], NOW)
    assert (plan.delete, plan.release, plan.create) == (["a"], ["a"], [])


@pytest.mark.parametrize(("indexes", "text"), [
    (set(), ""), ({0}, "0"), ({0, 1}, "0-1"), ({0, 1, 2, 5, 7, 8}, "0-2,5,7-8"), ({3, 1}, "1,3"),
])
def test_completed_indexes_format(indexes: set[int], text: str) -> None:
    assert format_indexes(indexes) == text
    assert parse_indexes(text) == indexes


@pytest.mark.parametrize(("finished", "expected"), [
    ([("Failed", 3)], 7), ([("Failed", 30), ("Failed", 3)], 17), ([("Failed", 30), ("Succeeded", 20)], 0),
    ([("Failed", 3)] * 12, BACKOFF_CAP - 3), ([], 0),
])
def test_failure_back_off(finished: list[tuple[str, float]], expected: float) -> None:
    pods = [pod(f"p{i}", phase, finished=ago) for i, (phase, ago) in enumerate(finished)]
    assert backoff_remaining(pods, NOW, 10) == pytest.approx(expected)


def test_job_pods_are_tracked_and_indexed_pods_know_their_index() -> None:
    plain = job_pod(job(), None)
    assert plain["metadata"]["generateName"] == "pi-"
    assert plain["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert plain["metadata"]["labels"] == {"job-name": "pi"}
    assert plain["metadata"]["ownerReferences"][0]["kind"] == "Job"
    indexed = job_pod(job(completionMode="Indexed", completions=3), 2)
    meta, spec = indexed["metadata"], indexed["spec"]
    assert meta["generateName"] == "pi-2-"
    assert meta["annotations"] == {"batch.kubernetes.io/job-completion-index": "2"}
    assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert spec["hostname"] == "pi-2"
    assert spec["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
