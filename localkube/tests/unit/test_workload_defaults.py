"""What the API server fills into Jobs, StatefulSets, DaemonSets and CronJobs before their controllers see them."""

from __future__ import annotations

from typing import Any

import pytest

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError

CONTAINERS = [{"name": "c", "image": "busybox", "command": ["true"]}]


@pytest.fixture
def core() -> ApiCore:
    api = ApiCore()
    api.bootstrap()
    return api


def create(core: ApiCore, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    return core.create(core.kind_of(key), "default", body)[0]


def job_body(name: str = "pi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": CONTAINERS}}, **spec}}


def test_a_job_gets_a_selector_on_its_own_uid_and_labels_to_match(core: ApiCore) -> None:
    job = create(core, ("batch", "jobs"), job_body())
    uid = job["metadata"]["uid"]
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
              "controller-uid": uid, "job-name": "pi"}
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["labels"] == labels  # a Job without labels takes its template's
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"], spec["suspend"],
            spec["manualSelector"], spec["podReplacementPolicy"]) == (1, 1, 6, "NonIndexed", False, False,
                                                                       "TerminatingOrFailed")


def test_job_defaults_keep_a_work_queue_without_completions(core: ApiCore) -> None:
    job = create(core, ("batch", "jobs"), job_body(parallelism=3))
    assert "completions" not in job["spec"] and job["spec"]["parallelism"] == 3
    labelled = create(core, ("batch", "jobs"), {**job_body("own"), "metadata": {"name": "own", "labels": {"a": "b"}}})
    assert labelled["metadata"]["labels"] == {"a": "b"}


def test_job_selectors_manual_or_generated(core: ApiCore) -> None:
    with pytest.raises(ApiError) as err:
        create(core, ("batch", "jobs"), job_body("x", selector={"matchLabels": {"app": "x"}}))
    assert "spec.selector: Invalid value" in err.value.message and "`selector` not auto-generated" in err.value.message
    manual = job_body("m", manualSelector=True, selector={"matchLabels": {"app": "m"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "m"}}
    made = create(core, ("batch", "jobs"), manual)
    assert made["spec"]["selector"] == {"matchLabels": {"app": "m"}}
    assert made["spec"]["template"]["metadata"]["labels"] == {"app": "m"}
    with pytest.raises(ApiError) as err:
        create(core, ("batch", "jobs"), job_body("n", manualSelector=True))
    assert "spec.selector: Required value" in err.value.message


def test_job_validation(core: ApiCore) -> None:
    with pytest.raises(ApiError) as err:
        create(core, ("batch", "jobs"), job_body("i", completionMode="Indexed", parallelism=2))
    assert "spec.completions: Required value: when completion mode is Indexed" in err.value.message
    always = job_body("a")
    del always["spec"]["template"]["spec"]["restartPolicy"]
    with pytest.raises(ApiError) as err:
        create(core, ("batch", "jobs"), always)
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' \
        in err.value.message
    job = create(core, ("batch", "jobs"), job_body("s"))
    with pytest.raises(ApiError) as err:
        core.patch(core.kind_of(("batch", "jobs")), "default", "s", "application/merge-patch+json",
                   {"spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}}})
    assert "field is immutable" in err.value.message
    assert job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]


def _workload(kind: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"},
            "spec": {"selector": {"matchLabels": {"app": "w"}},
                     "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": CONTAINERS}}, **spec}}


def test_daemonset_defaults_make_rollout_status_possible(core: ApiCore) -> None:
    ds = create(core, ("apps", "daemonsets"), _workload("DaemonSet"))
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10


@pytest.mark.parametrize(("strategy", "expected"), [
    (None, {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    ({"type": "RollingUpdate"}, {"type": "RollingUpdate"}),
    ({"type": "RollingUpdate", "rollingUpdate": {}}, {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    ({"type": "OnDelete"}, {"type": "OnDelete"}),
])
def test_statefulset_defaults(core: ApiCore, strategy: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    body = _workload("StatefulSet", volumeClaimTemplates=[{"metadata": {"name": "data"},
                                                           "spec": {"accessModes": ["ReadWriteOnce"]}}])
    if strategy is not None:
        body["spec"]["updateStrategy"] = strategy
    sts = create(core, ("apps", "statefulsets"), body)
    assert sts["spec"]["updateStrategy"] == expected
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["volumeMode"] == "Filesystem" and claim["status"] == {"phase": "Pending"}


def test_cronjob_defaults(core: ApiCore) -> None:
    cronjob = create(core, ("batch", "cronjobs"), {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": CONTAINERS}}}}}})
    spec = cronjob["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_controllerrevisions_are_served(core: ApiCore) -> None:
    revision = create(core, ("apps", "controllerrevisions"), {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "w-1"},
        "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1})
    assert (revision["kind"], revision["revision"]) == ("ControllerRevision", 1)
