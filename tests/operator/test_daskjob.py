"""DaskJobs on LocalKube with the real operator: they always end, Successful or Failed, and clean up after.

Clusters of the failure tests have no workers and their runners barely compute, to keep this tier small.
The Flyte test runs a LocalKube of its own, whose image map supplies the old `dask-scheduler` and
`dask-worker` scripts that Flyte-generated DaskJobs call.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client, Event
from localkube.cluster import LocalKube
from localkube.node.images import ImageMapping
from localkube.pytest_plugin import run_kubectl
from localkube.testing import until

from dask_kube import naming, specs
from dask_kube.naming import JobStatus, Reason
from tests.conftest import CRDS, OperatorProcess
from tests.paths import EXAMPLE_MANIFESTS

SHARED = EXAMPLE_MANIFESTS
pytestmark = pytest.mark.e2e
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any] | None:
    proc = kubectl("get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(proc.stdout) if proc.stdout.strip() else None



def _describe(kubectl: Kubectl, job: str) -> str:
    """What a job and its children look like, for a failed wait."""
    return "\n".join(kubectl(*args, check=False).stdout for args in (
        ("get", "daskjob", job, "-o", "yaml"), ("get", "daskcluster", job, "-o", "jsonpath={.status}"),
        ("get", "pods", "-o", "wide")))


def _status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return (_get(kubectl, "daskjob", name) or {}).get("status") or {}


def _ends(kubectl: Kubectl, name: str, outcome: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = _status(kubectl, name)
        if status.get("jobStatus") in (JobStatus.SUCCESSFUL, JobStatus.FAILED):
            if status["jobStatus"] != outcome:
                logs = kubectl("logs", naming.job_runner_name(name), check=False)
                raise AssertionError(f"{name} ended {status['jobStatus']}, not {outcome}: {status}\n"
                                     f"runner log:\n{logs.stdout}{logs.stderr}")
            return status
        return None
    return until(check, f"DaskJob {name} to end {outcome}", timeout, explain=lambda: _describe(kubectl, name))


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    [cond] = [c for c in status.get("conditions") or () if c["type"] == type_]
    return cond


def _events(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "DaskJob"]


def _job(name: str, script: str, *, workers: int = 0, restart: str = "Never", **knobs: Any) -> dict[str, Any]:
    cluster = specs.make_cluster_spec(name, n_workers=workers, worker_command="dask worker --nthreads 1 --no-dashboard")
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB, "metadata": {"name": name},
            "spec": {**knobs,
                     "job": {"spec": {"restartPolicy": restart, "containers": [
                         {"name": "job", "image": "ghcr.io/dask/dask:latest", "args": ["python", "-c", script]}]}},
                     "cluster": {"spec": cluster["spec"]}}}


def _apply(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))


class StatusWatch:
    """Every distinct `jobStatus` a watch sees, in order (polling could miss the short-lived ones). The watch
    starts from the resourceVersion of a list taken before the test creates anything, so that it cannot miss the
    first statuses however long kubectl takes to start (`kubectl get --watch` could: it lists when it is ready)."""

    def __init__(self, namespace: str, kubeconfig: Path) -> None:
        self.seen: list[str] = []
        base = ["kubectl", "--kubeconfig", str(kubeconfig)]
        version = subprocess.run([*base, "get", "daskjobs", "--namespace", namespace, "-o",
                                  "jsonpath={.metadata.resourceVersion}"], capture_output=True, text=True,
                                 check=True, timeout=30).stdout.strip()
        path = f"/apis/{naming.API_VERSION}/namespaces/{namespace}/daskjobs?watch=true&resourceVersion={version}"
        self.proc = subprocess.Popen([*base, "get", "--raw", path], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            job_status = (json.loads(line)["object"].get("status") or {}).get("jobStatus")
            if job_status and (not self.seen or self.seen[-1] != job_status):
                self.seen.append(job_status)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def watch(namespace: str, kube: Any) -> Iterator[StatusWatch]:
    w = StatusWatch(namespace, kube.kubeconfig)
    yield w
    w.close()


def test_sum_example_runs_to_successful(kubectl: Kubectl, operator: Any, namespace: str,
                                        watch: StatusWatch) -> None:
    doc = yaml.safe_load((SHARED / "sum-daskjob.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    _apply(kubectl, doc)
    status = _ends(kubectl, "sum-job", JobStatus.SUCCESSFUL, timeout=120)
    until(lambda: watch.seen[-1:] == [JobStatus.SUCCESSFUL], "the watch to see Successful", 10)
    assert watch.seen == [JobStatus.JOB_CREATED, JobStatus.CLUSTER_CREATED, JobStatus.RUNNING, JobStatus.SUCCESSFUL]
    assert status["clusterName"] == "sum-job" and status["jobRunnerPodName"] == "sum-job-runner"
    start, end = status["startTime"], status["endTime"]
    assert start.endswith("Z") and end.endswith("Z") and start <= end
    assert _condition(status, "Complete")["reason"] == Reason.JOB_SUCCEEDED
    assert [e["reason"] for e in _events(kubectl, "sum-job")] == [Reason.JOB_SUCCEEDED]
    until(lambda: _get(kubectl, "daskcluster", "sum-job") is None, "the job's cluster to be deleted", 30)
    runner = _get(kubectl, "pod", "sum-job-runner")
    assert runner is not None and runner["status"]["phase"] == "Succeeded"  # kept: its log is the job's output
    assert "Completed" in kubectl("get", "pod", "sum-job-runner").stdout
    assert "total 328350" in kubectl("logs", "sum-job-runner").stdout
    env = {e["name"]: e.get("value") for e in runner["spec"]["containers"][0]["env"]}
    assert env[naming.SCHEDULER_ADDRESS_ENV] == f"tcp://sum-job-scheduler.{namespace}.svc.cluster.local:8786"
    row = kubectl("get", "daskjob", "sum-job").stdout.splitlines()[1].split()
    assert row[:3] == ["sum-job", "Successful", "2"]


def test_a_failing_script_ends_failed(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    _apply(kubectl, _job("fails", "assert False, 'wrong answer'"))
    status = _ends(kubectl, "fails", JobStatus.FAILED)
    cond = _condition(status, "Failed")
    assert cond["reason"] == Reason.JOB_FAILED and "exited with code 1" in cond["message"]
    assert status["endTime"]
    [event] = _events(kubectl, "fails")
    assert (event["reason"], event["type"]) == (Reason.JOB_FAILED, "Warning")
    until(lambda: _get(kubectl, "daskcluster", "fails") is None, "the job's cluster to be deleted", 30)
    assert (_get(kubectl, "pod", "fails-runner") or {})["status"]["phase"] == "Failed"
    assert "wrong answer" in kubectl("logs", "fails-runner").stdout + kubectl("logs", "fails-runner").stderr


def test_an_invalid_cluster_fails_the_job_instead_of_hanging(kubectl: Kubectl, operator: Any,
                                                            namespace: str) -> None:
    job = _job("invalid", "import time; time.sleep(600)")
    job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]["resources"] = {"limit": {"cpu": "1"}}
    _apply(kubectl, job)
    status = _ends(kubectl, "invalid", JobStatus.FAILED, timeout=60)
    cond = _condition(status, "Failed")
    assert cond["reason"] == Reason.CLUSTER_FAILED and "'limit'" in cond["message"]
    until(lambda: _get(kubectl, "daskcluster", "invalid") is None, "the cluster to be deleted", 30)
    until(lambda: _get(kubectl, "pod", "invalid-runner") is None, "the waiting runner to be deleted", 60)


def test_deleting_the_runner_fails_the_job(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    _apply(kubectl, _job("orphan", "import time; time.sleep(600)"))
    until(lambda: _status(kubectl, "orphan").get("jobStatus") == JobStatus.RUNNING, "the job to run",
           explain=lambda: _describe(kubectl, "orphan"))
    kubectl("delete", "pod", "orphan-runner", "--wait=false")
    status = _ends(kubectl, "orphan", JobStatus.FAILED)
    assert _condition(status, "Failed")["reason"] == Reason.RUNNER_DELETED
    until(lambda: _get(kubectl, "daskcluster", "orphan") is None, "the cluster to be deleted", 30)


def test_a_leftover_runner_pod_of_the_same_name_never_decides_a_new_job(kubectl: Kubectl, operator: Any,
                                                                       namespace: str) -> None:
    """A pod named like the job's runner that the job did not create (an earlier job's, orphaned): before the fix,
    its Succeeded phase made this failing job Successful at once."""
    leftover = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": naming.job_runner_name("reused"), "labels": naming.job_runner_selector("reused")},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "job", "image": "ghcr.io/dask/dask:latest", "args": ["python", "-c", "pass"]}]}}
    _apply(kubectl, leftover)
    until(lambda: ((_get(kubectl, "pod", "reused-runner") or {}).get("status") or {}).get("phase") == "Succeeded",
          "the leftover runner to succeed", 60)
    _apply(kubectl, _job("reused", "assert False, 'the real runner ran'"))
    status = _ends(kubectl, "reused", JobStatus.FAILED)
    assert _condition(status, "Failed")["reason"] == Reason.JOB_FAILED
    reasons = [(e["reason"], e["type"]) for e in _events(kubectl, "reused")]
    assert sorted(reasons) == [(Reason.JOB_FAILED, "Warning"), (Reason.RUNNER_NOT_OWNED, "Warning")]
    runner = _get(kubectl, "pod", "reused-runner")
    assert runner is not None and runner["metadata"]["ownerReferences"][0]["kind"] == naming.DASKJOB
    assert "the real runner ran" in kubectl("logs", "reused-runner").stdout + kubectl("logs", "reused-runner").stderr


def test_active_deadline_fails_and_deletes_everything(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    _apply(kubectl, _job("late", "import time; time.sleep(600)", activeDeadlineSeconds=20))
    until(lambda: _status(kubectl, "late").get("jobStatus") == JobStatus.RUNNING, "the job to run",
           explain=lambda: _describe(kubectl, "late"))
    status = _ends(kubectl, "late", JobStatus.FAILED, timeout=30)
    cond = _condition(status, "Failed")
    assert cond["reason"] == Reason.DEADLINE_EXCEEDED and "activeDeadlineSeconds=20" in cond["message"]
    assert [e["reason"] for e in _events(kubectl, "late")] == [Reason.DEADLINE_EXCEEDED]
    until(lambda: _get(kubectl, "daskcluster", "late") is None and _get(kubectl, "pod", "late-runner") is None,
           "the cluster and the runner to be deleted", 60)
    assert _get(kubectl, "daskjob", "late") is not None  # no TTL: the job itself stays


def test_ttl_after_finished_deletes_the_job(kubectl: Kubectl, operator: Any, namespace: str) -> None:
    _apply(kubectl, _job("brief", "print('done')", ttlSecondsAfterFinished=3))
    status = _ends(kubectl, "brief", JobStatus.SUCCESSFUL)
    ended = dt.datetime.fromisoformat(status["endTime"].replace("Z", "+00:00"))
    until(lambda: _get(kubectl, "daskjob", "brief") is None, "the job to be deleted after its TTL", 30)
    # Not at once: three seconds after endTime at the earliest (LocalKube shares this machine's clock).
    assert (dt.datetime.now(dt.UTC) - ended).total_seconds() >= 3
    until(lambda: _get(kubectl, "pod", "brief-runner") is None, "the runner to go with its job", 30)


# -- Flyte ------------------------------------------------------------------------------------------------------

FLYTE_RUNNER = """
from dask.distributed import Client, Event
client = Client()
client.wait_for_workers(1, timeout=120)
assert client.submit(sum, client.map(lambda x: x + 1, range(10))).result() == 55
Event("checked").wait(timeout=120)  # the test inspects the cluster, then lets the job finish
print("flyte task done")
"""


def flyte_daskjob(name: str) -> dict[str, Any]:
    """A DaskJob shaped like the ones the Flyte dask plugin generates (flyteplugins/go/tasks/plugins/k8s/dask)."""
    image = "cr.flyte.org/flyteorg/flytekit:py3.11-latest"
    execution = {"labels": {"execution-id": "f1a2b3", "domain": "development", "project": "flytesnacks"},
                 "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}}
    return {
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
        "metadata": {"name": name, **copy.deepcopy(execution)},
        "spec": {
            "job": {"metadata": copy.deepcopy(execution), "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "job-runner", "image": image, "args": ["python", "-c", FLYTE_RUNNER],
                                "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}},
            "cluster": {
                "metadata": copy.deepcopy(execution),
                "spec": {
                    "scheduler": {
                        "spec": {"restartPolicy": "Always", "containers": [{
                            "name": "scheduler", "image": image, "args": ["dask-scheduler"],
                            "ports": [{"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                                      {"name": "dashboard", "containerPort": 8787, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "100m"}}}]},
                        "service": {
                            "type": "NodePort",
                            "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                            "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                                      {"name": "dashboard", "protocol": "TCP", "port": 8787,
                                       "targetPort": "dashboard"}]},
                    },
                    "worker": {
                        "replicas": 1,
                        "spec": {"restartPolicy": "Always", "containers": [{
                            "name": "dask-worker", "image": image,
                            "args": ["dask-worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", "1",
                                     "--memory-limit", "1Gi"],
                            "resources": {"requests": {"cpu": "100m"}}}]},
                    },
                },
            },
        },
    }


@pytest.fixture(scope="module")
def flyte_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A LocalKube whose images have the old `dask-scheduler` / `dask-worker` scripts, with the operator on it."""
    bin_dir = tmp_path_factory.mktemp("old-dask-scripts")
    dask = Path(sys.executable).parent / "dask"
    for script, sub in (("dask-scheduler", "scheduler"), ("dask-worker", "worker")):
        path = bin_dir / script
        path.write_text(f'#!/bin/sh\nexec "{dask}" {sub} "$@"\n')
        path.chmod(0o755)
    cache = tmp_path_factory.mktemp("kubectl-cache")
    with LocalKube.in_thread(image_map=[ImageMapping("*", path=(str(bin_dir),))]) as local:
        run_kubectl(local.kubeconfig, cache, "apply", "-f", str(CRDS))
        for crd in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
            run_kubectl(local.kubeconfig, cache, "wait", "--for=condition=Established",
                        f"crd/{crd}.kubernetes.dask.org", "--timeout=30s")
        handle = OperatorProcess(local.kubeconfig, tmp_path_factory.mktemp("flyte-operator") / "operator.log")
        handle.start()
        try:
            yield local.kubeconfig, cache
        finally:
            handle.stop()


def test_a_flyte_generated_daskjob_runs(flyte_kube: tuple[Path, Path]) -> None:
    kubeconfig, cache = flyte_kube

    def kubectl(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kubeconfig, cache, "--namespace", "default", *args, **kwargs)

    _apply(kubectl, flyte_daskjob("flyte-a1b2"))
    # Flyte polls jobStatus only: it is there at once.
    until(lambda: _status(kubectl, "flyte-a1b2").get("jobStatus"), "a jobStatus", 15)
    until(lambda: _status(kubectl, "flyte-a1b2").get("jobStatus") == JobStatus.RUNNING, "the job to run", 60)

    svc = until(lambda: _get(kubectl, "service", "flyte-a1b2-scheduler"), "the scheduler service")
    assert svc["spec"]["type"] == "NodePort"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"tcp-comm": 8786, "dashboard": 8787}
    cluster = _get(kubectl, "daskcluster", "flyte-a1b2")
    assert cluster is not None
    for obj in (cluster, svc, _get(kubectl, "pod", "flyte-a1b2-scheduler"), _get(kubectl, "pod", "flyte-a1b2-runner")):
        assert obj is not None
        meta = obj["metadata"]
        assert meta["labels"]["execution-id"] == "f1a2b3" and meta["labels"]["project"] == "flytesnacks", meta
        assert meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false", meta
    assert cluster["metadata"]["labels"][naming.CLUSTER_LABEL] == "flyte-a1b2"
    workers = json.loads(kubectl("get", "pods", "-l", naming.selector_string(naming.worker_selector("flyte-a1b2")),
                                 "-o", "json").stdout)["items"]
    assert workers and all(w["metadata"]["labels"]["domain"] == "development" for w in workers)

    # In from outside through the NodePort, as Flyte users reach the dashboard and the scheduler.
    node = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    node_port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["name"] == "tcp-comm")
    with Client(f"tcp://{address}:{node_port}", timeout=30) as client:
        client.wait_for_workers(1, timeout=30)  # the identity sent at connect time may predate the worker
        names = [w["name"] for w in client.scheduler_info()["workers"].values()]
        assert names == [w["metadata"]["name"] for w in workers]  # the $(DASK_WORKER_NAME) argument worked
        Event("checked", client=client).set()
    status = _ends(kubectl, "flyte-a1b2", JobStatus.SUCCESSFUL, timeout=60)
    assert status["startTime"] <= status["endTime"]
    assert "flyte task done" in kubectl("logs", "flyte-a1b2-runner").stdout
    until(lambda: _get(kubectl, "daskcluster", "flyte-a1b2") is None, "the cluster to be deleted", 30)
