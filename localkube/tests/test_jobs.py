"""Jobs and CronJobs in a running LocalKube, through the real kubectl and kr8s: real processes that succeed and
fail, Indexed completion, deadlines, suspension, TTL, cascading deletion, and a CronJob firing on schedule."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import kr8s.asyncio
import pytest
import yaml
from kr8s.asyncio.objects import Job

from localkube.cluster import LocalKube
from localkube.controllers.jobs import TRACKING_FINALIZER, JobController
from localkube.testing import async_until, until
from tests.test_workloads import _kubectl

SIMULATE = {"localkube.dask.org/simulate": "true"}


def job(name: str, command: list[str] | None = None, *, image: str = "busybox", simulate: bool = False,
        **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": SIMULATE if simulate else {}},
                                  "spec": {"restartPolicy": "Never", "containers": [container]}}, **spec}}


def _json(kubectl, *args: str) -> Any:  # type: ignore[no-untyped-def]
    return json.loads(kubectl(*args, "-o", "json").stdout)


def _conditions(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in obj["status"].get("conditions") or ()]


def test_kubectl_create_job_wait_and_logs(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo hi")
    out = kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s").stdout
    assert out.strip() == "job.batch/hello condition met"
    assert kubectl("logs", "job/hello").stdout == "hi\n"
    done = _json(kubectl, "get", "job", "hello")
    status = done["status"]
    assert (status["succeeded"], status["ready"], status["terminating"]) == (1, 0, 0)
    assert "active" not in status and status["completionTime"] and status["startTime"]
    assert _conditions(done) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                 ("Complete", "True", "CompletionsReached")]
    [pod] = _json(kubectl, "get", "pods", "-l", "batch.kubernetes.io/job-name=hello")["items"]
    uid = done["metadata"]["uid"]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid
    assert pod["metadata"]["labels"]["controller-uid"] == uid and pod["metadata"]["labels"]["job-name"] == "hello"
    assert pod["status"]["phase"] == "Succeeded"
    assert TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or ())  # counted, then released
    events = _json(kubectl, "get", "events")["items"]
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "hello"]
    assert "SuccessfulCreate" in reasons and "Completed" in reasons


def test_a_failing_process_fails_the_job(kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(job("crash", ["sh", "-c", "echo oops; exit 3"],
                                                          backoffLimit=0)))
    kubectl("wait", "--for=condition=failed", "job/crash", "--timeout=60s")
    failed = _json(kubectl, "get", "job", "crash")
    assert _conditions(failed) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                   ("Failed", "True", "BackoffLimitExceeded")]
    assert failed["status"]["failed"] == 1 and "completionTime" not in failed["status"]
    assert kubectl("logs", "job/crash").stdout == "oops\n"
    [pod] = _json(kubectl, "get", "pods", "-l", "job-name=crash")["items"]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_a_job_of_restart_policy_always_is_refused(kubectl) -> None:  # type: ignore[no-untyped-def]
    body = job("always", ["true"])
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    out = kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert out.returncode != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' \
        in out.stderr


def test_indexed_python_job_gets_its_completion_index(kubectl) -> None:  # type: ignore[no-untyped-def]
    body = job("indexed", ["python", "-c", "import os; print('index', os.environ['JOB_COMPLETION_INDEX'])"],
               image="python:3.12", completionMode="Indexed", completions=3, parallelism=3)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    kubectl("wait", "--for=condition=complete", "job/indexed", "--timeout=60s")
    done = _json(kubectl, "get", "job", "indexed")
    assert (done["status"]["completedIndexes"], done["status"]["succeeded"]) == ("0-2", 3)
    for index in range(3):
        selector = f"batch.kubernetes.io/job-completion-index={index}"
        [pod] = _json(kubectl, "get", "pods", "-l", selector)["items"]
        assert pod["spec"]["hostname"] == f"indexed-{index}"
        assert pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == str(index)
        assert kubectl("logs", pod["metadata"]["name"]).stdout == f"index {index}\n"


@pytest.mark.localkube_only
def test_failures_are_retried_with_back_off_up_to_the_limit(kubectl, local_kube) -> None:  # type: ignore[no-untyped-def]
    [controller] = [c for c in local_kube.kube.controllers if isinstance(c, JobController)]
    controller.backoff_base = 0.2  # 10 s doubling on a real cluster
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump(job("retry", ["sh", "-c", "exit 1"], backoffLimit=2)))
        kubectl("wait", "--for=condition=failed", "job/retry", "--timeout=60s")
    finally:
        controller.backoff_base = JobController.backoff_base
    failed = _json(kubectl, "get", "job", "retry")
    assert failed["status"]["failed"] == 3
    pods = _json(kubectl, "get", "pods", "-l", "job-name=retry")["items"]
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Failed"}


async def test_deadline_suspension_and_ttl_with_kr8s(kube, namespace: str) -> None:  # type: ignore[no-untyped-def]
    api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig))

    async def make(body: dict[str, Any]) -> Job:
        body["metadata"]["namespace"] = namespace
        made = await Job(body, api=api)
        await made.create()
        return made

    async def pods_of(name: str) -> list[Any]:
        return [p async for p in api.get("pods", namespace=namespace, label_selector={"job-name": name})]

    # Simulated pods never finish: the deadline fails the job and its pods are deleted.
    late = await make(job("late", simulate=True, activeDeadlineSeconds=1, parallelism=2, completions=2))
    await late.wait("condition=Failed", timeout=30)
    assert _conditions(late.raw)[-1] == ("Failed", "True", "DeadlineExceeded")
    await async_until(_no_pods(pods_of, "late"), what="the late job's pods deleted")

    # Suspended: no pods until resumed.
    held = await make(job("held", simulate=True, suspend=True, parallelism=2, completions=2))
    await held.wait("condition=Suspended", timeout=30)
    assert not await pods_of("held") and "startTime" not in held.raw["status"]
    await held.patch({"spec": {"suspend": False}})
    await held.wait("jsonpath='{.status.ready}'=2", timeout=30)
    assert _conditions(held.raw)[-1] == ("Suspended", "False", "JobResumed")
    assert len(await pods_of("held")) == 2

    # ttlSecondsAfterFinished: the finished job and its pods are deleted.
    brief = await make(job("brief", ["true"], ttlSecondsAfterFinished=0))
    await brief.wait("delete", timeout=30)
    await async_until(_no_pods(pods_of, "brief"), what="the finished job's pods deleted")


def _no_pods(pods_of, name: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return not await pods_of(name)

    return check


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_deleting_a_job_releases_and_collects_its_pods(kubectl, cascade: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(job("work", simulate=True, parallelism=2, completions=4)))
    until(lambda: _json(kubectl, "get", "job", "work")["status"].get("ready") == 2, what="2 ready pods")
    pods = _json(kubectl, "get", "pods", "-l", "job-name=work")["items"]
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in pods)
    kubectl("delete", "job", "work", f"--cascade={cascade}")
    left = lambda: _json(kubectl, "get", "pods", "-l", "job-name=work")["items"]  # noqa: E731
    if cascade == "orphan":
        until(lambda: all(not p["metadata"].get("finalizers") and not p["metadata"].get("ownerReferences")
                          for p in left()), what="orphaned pods, no longer tracked")
        assert len(left()) == 2
    else:
        until(lambda: not left(), what="the job's pods deleted")


@pytest.mark.localkube_only
async def test_a_cronjob_starts_jobs_on_schedule(tmp_path: Path) -> None:
    async with LocalKube() as kube:
        real = kube.core.clock
        now = real()
        # Run LocalKube's clock 1.5 s before the next minute, so that `* * * * *` fires at once.
        shift = dt.timedelta(seconds=58.5 - now.second - now.microsecond / 1e6)
        kube.core.clock = lambda: real() + shift
        code, out = await _kubectl(kube, tmp_path, "create", "cronjob", "tick", "--image=busybox",
                                   "--schedule=* * * * *", "--", "sh", "-c", "echo tick")
        assert code == 0, out
        jobs = lambda: kube.store.list(("batch", "jobs"), "default")  # noqa: E731
        [made] = await async_until(jobs, what="the scheduled job", within=20)
        scheduled = dt.datetime.strptime(
            made["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
            "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert scheduled.second == 0 and made["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
        assert made["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        cronjob = lambda: kube.store.get(("batch", "cronjobs"), "default", "tick")["status"]  # noqa: E731
        await async_until(lambda: cronjob().get("lastSuccessfulTime"), what="the job's success recorded")
        status = cronjob()
        assert status["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert "active" not in status
        code, out = await _kubectl(kube, tmp_path, "logs", f"job/{made['metadata']['name']}")
        assert (code, out) == (0, "tick\n")
