"""Faults in what runs: worker and scheduler processes killed, a DaskJob's scheduler killed, a namespace deleted
under a running cluster, and the client side (a port-forward cut mid-computation, a client SIGKILLed).

These use real dask processes where the fault is about them (a few workers, small computations).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import dask.config
import pytest
from distributed import Client
from kr8s.objects import Pod
from localkube.testing import free_port

from dask_kube import KubeCluster, naming
from dask_kube.naming import JobStatus
from tests.reliability import (
    Kubectl,
    apply,
    cluster_body,
    condition,
    exactly,
    get,
    items,
    log_since,
    orphans,
    record,
    running,
    status,
    tracebacks,
    until,
    worker_pods,
)

pytestmark = pytest.mark.e2e


def _slow_squares(client: Client, n: int = 20, seconds: float = 0.5) -> list[Any]:
    def slow_square(i: int) -> int:
        import time as t
        t.sleep(seconds)
        return i * i
    return client.map(slow_square, range(n), pure=False)


def _done(futures: list[Any]) -> int:
    return sum(f.status == "finished" for f in futures)


@pytest.mark.localkube_only
def test_worker_pods_killed_during_a_computation(kubectl: Kubectl, operator: Any, namespace: str,
                                                 local_kube: Any) -> None:
    started = time.monotonic()
    apply(kubectl, cluster_body("victims", 3, simulate_workers=False))
    running(kubectl, "victims", ready=3, timeout=120)
    before = {p["metadata"]["name"]: p for p in worker_pods(kubectl, "victims")}
    killed, deleted = sorted(before)[:2]
    pod = Pod.get("victims-scheduler", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(3, timeout=30)
        futures = _slow_squares(client)
        until(lambda: _done(futures) >= 3, "a few tasks to finish", 30, every=0.05)
        local_kube.call(local_kube.kube.kubelet.kill_container, namespace, killed, None, signal.SIGKILL)
        until(lambda: _done(futures) >= 8, "more tasks to finish", 30, every=0.05)
        kubectl("delete", "pod", deleted, "--wait=false")
        results = client.gather(futures)
        assert results == [i * i for i in range(20)]
        # The killed container restarts in place (restartPolicy Always), the deleted pod is replaced.
        after = exactly(kubectl, "victims", 3, timeout=90, hold=0)
        assert deleted not in after
        restarted = until(lambda: int((get(kubectl, "pod", killed).get("status") or {}).get(
            "containerStatuses", [{}])[0].get("restartCount") or 0), f"{killed} to restart its container")
        running(kubectl, "victims", ready=3, timeout=120)
        client.wait_for_workers(3, timeout=60)
        assert client.submit(sum, _slow_squares(client, 6, 0.01)).result(timeout=60) == sum(i * i for i in range(6))
    assert orphans(kubectl) == []
    record("test_worker_pods_killed_during_a_computation", "workers",
           injected=f"SIGKILL of worker container {killed} and deletion of worker pod {deleted} while 20 tasks "
                    "of 0.5 s ran on 3 workers",
           survived=f"all 20 results correct (recomputed by Dask); {killed} restarted ({restarted} restart), "
                    f"{deleted} replaced by a new pod; 3 workers connected again",
           seconds=time.monotonic() - started)


@pytest.mark.localkube_only
def test_scheduler_killed_cluster_recovers(kubectl: Kubectl, operator: Any, namespace: str,
                                           local_kube: Any) -> None:
    started = time.monotonic()
    apply(kubectl, cluster_body("headless", 2, simulate_workers=False))
    running(kubectl, "headless", ready=2, timeout=120)
    local_kube.call(local_kube.kube.kubelet.kill_container, namespace, "headless-scheduler", None, signal.SIGKILL)
    def restarts() -> int:  # 0 also while the pod is being replaced
        statuses = (get(kubectl, "pod", "headless-scheduler").get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)

    until(lambda: status(kubectl, "daskcluster", "headless").get("phase") != "Running" or restarts() > 0,
          "the operator or the kubelet to notice the dead scheduler", 30)
    cluster = running(kubectl, "headless", ready=2, timeout=150)
    assert condition(cluster["status"], "Ready").get("status") == "True"
    pod = Pod.get("headless-scheduler", namespace=namespace)
    with pod.portforward(8786, local_port=free_port()) as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        assert client.submit(lambda: 42).result(timeout=30) == 42
    assert orphans(kubectl) == []
    record("test_scheduler_killed_cluster_recovers", "scheduler",
           injected="SIGKILL of the scheduler container of a Running cluster with 2 workers",
           survived="cluster Running and Ready again with both workers connected; a new computation succeeds",
           lost="the scheduler's state (by design: work in flight must be resubmitted)",
           seconds=time.monotonic() - started)


RUNNER = """
import time
from dask.distributed import Client
client = Client()
client.wait_for_workers(1, timeout=60)
print("runner connected", flush=True)
for i in range(120):
    assert client.submit(time.sleep, 0.25, pure=False).result(timeout=60) is None
print("runner done", flush=True)
"""


@pytest.mark.localkube_only
def test_daskjob_whose_scheduler_is_killed_ends(kubectl: Kubectl, operator: Any, namespace: str,
                                                local_kube: Any) -> None:
    started = time.monotonic()
    cluster = cluster_body("doomed", 1, simulate_workers=False)
    job = {"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB, "metadata": {"name": "doomed"},
           "spec": {"job": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "job", "image": "ghcr.io/dask/dask:latest", "args": ["python", "-c", RUNNER]}]}},
                    "cluster": {"spec": cluster["spec"]}}}
    apply(kubectl, job)
    until(lambda: "runner connected" in kubectl("logs", "doomed-runner", check=False).stdout,
          "the runner to connect to its scheduler", 120,
          explain=lambda: json.dumps(status(kubectl, "daskjob", "doomed")))
    assert status(kubectl, "daskjob", "doomed").get("jobStatus") == JobStatus.RUNNING
    local_kube.call(local_kube.kube.kubelet.kill_container, namespace, "doomed-scheduler", None, signal.SIGKILL)
    final = until(lambda: (s := status(kubectl, "daskjob", "doomed")).get("jobStatus")
                  in (JobStatus.SUCCESSFUL, JobStatus.FAILED) and s, "the job to end (not hang)", 150,
                  explain=lambda: kubectl("get", "daskjob,pods", "-o", "wide").stdout)
    reason = next((c.get("reason") for c in final.get("conditions") or () if c.get("status") == "True"), None)
    assert final.get("endTime") and reason
    until(lambda: not get(kubectl, "daskcluster", "doomed"), "the job's cluster to be deleted", 60)
    record("test_daskjob_whose_scheduler_is_killed_ends", "daskjob",
           injected="SIGKILL of a running DaskJob's scheduler container while its runner computes",
           survived=f"the job ended {final['jobStatus']} ({reason}) instead of hanging; its cluster was deleted",
           lost="the job's computation (the runner's client lost its scheduler)"
           if final["jobStatus"] == JobStatus.FAILED else "nothing", seconds=time.monotonic() - started)


@pytest.mark.localkube_only
def test_namespace_deleted_under_a_running_cluster(kube: Any, kubectl: Kubectl, operator: Any,
                                                   namespace: str) -> None:
    started = time.monotonic()
    doomed = f"{namespace}-gone"
    code, body = kube.request("POST", "/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": doomed}})
    assert code == 201, body

    def kc(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return kube.kubectl("--namespace", doomed, *args, **kw)

    offset = operator.log_path.stat().st_size
    apply(kc, cluster_body("sinking", 3))
    extra = {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP, "metadata": {"name": "sinking-extra"},
             "spec": {"cluster": "sinking", "worker": cluster_body("x", 2)["spec"]["worker"]}}
    apply(kc, extra)
    apply(kc, {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": {"name": "sinking"},
               "spec": {"cluster": "sinking", "minimum": 3, "maximum": 4}})
    running(kc, "sinking")
    until(lambda: len(worker_pods(kc, "sinking")) == 5, "5 worker pods (two groups)")
    code, _ = kube.request("DELETE", f"/api/v1/namespaces/{doomed}")
    assert code in (200, 202)
    until(lambda: kube.request("GET", f"/api/v1/namespaces/{doomed}")[0] == 404, "the namespace to be gone", 90,
          explain=lambda: kc("get", "all,daskclusters,daskworkergroups,daskautoscalers", "-o", "name",
                             check=False).stdout)
    for path in ("/api/v1/pods", "/api/v1/services", *(f"/apis/{naming.GROUP}/{naming.VERSION}/{p}" for p in (
            "daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"))):
        code, listing = kube.request("GET", path)
        assert code == 200
        left = [o["metadata"]["name"] for o in listing["items"] if o["metadata"].get("namespace") == doomed]
        assert left == [], f"{path} still has {left} in the deleted namespace"
    # The operator is healthy: a new cluster elsewhere becomes Running and scales.
    apply(kubectl, cluster_body("afterwards", 2))
    running(kubectl, "afterwards")
    exactly(kubectl, "afterwards", 2)
    assert operator.proc.poll() is None
    failed = tracebacks(log_since(operator.log_path, offset))
    record("test_namespace_deleted_under_a_running_cluster", "namespace",
           injected="namespace deleted under a Running DaskCluster with 2 worker groups (5 pods) and a "
                    "DaskAutoscaler",
           survived="namespace gone with no pods, Services or custom resources left; a new cluster in another "
                    "namespace Running with its workers", seconds=time.monotonic() - started,
           reconcile_failures_logged=len(failed))


# -- the client side ------------------------------------------------------------------------------------------


@pytest.mark.localkube_only
def test_client_survives_api_restart_and_a_port_forward_cut_mid_computation(operator: Any, namespace: str,
                                                                            kubectl: Kubectl,
                                                                            local_kube: Any) -> None:
    started = time.monotonic()
    with KubeCluster(name="tether", namespace=namespace, n_workers=1, quiet=True) as cluster, \
            Client(cluster) as client:
        cluster.wait_for_workers(1, timeout=60)
        scheduler_id = client.scheduler_info()["id"]
        futures = _slow_squares(client)
        until(lambda: _done(futures) >= 2, "the computation to be under way", 30, every=0.05)
        # Restarting the API server cuts every port-forward websocket: the client's comm dies mid-computation.
        local_kube.run(local_kube.kube.restart_api())

        def recomputed() -> list[int] | None:
            try:
                fresh = _slow_squares(client, 20, 0.05)
                return client.gather(fresh, errors="raise")  # type: ignore[no-any-return]
            except Exception:  # the cut cancels what was in flight (distributed's rule); try again
                return None

        results = until(recomputed, "the client to compute again after the cut", 90, every=0.5)
        assert results == [i * i for i in range(20)]
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.id) == scheduler_id  # same cluster
        # The client and the operator both follow the restarted API server: scaling works.
        cluster.scale(2)
        cluster.wait_for_workers(2, timeout=90)
        client.wait_for_workers(2, timeout=60)
        lost = sum(f.status == "cancelled" for f in futures)
    assert get(kubectl, "daskcluster", "tether") == {} or until(
        lambda: not get(kubectl, "daskcluster", "tether"), "the cluster deleted on close", 60)
    record("test_client_survives_api_restart_and_a_port_forward_cut_mid_computation", "client",
           injected="API server restarted (every port-forward cut) while 20 tasks of 0.5 s ran through a "
                    "KubeCluster's port-forward",
           survived="the client reconnected to the same scheduler, recomputed correct results, and scaled the "
                    "cluster 1->2 after the restart; closing deleted the cluster",
           lost=f"{lost} of 20 futures in flight were cancelled by the cut (distributed's rule; resubmitted)",
           seconds=time.monotonic() - started)


CLIENT = """
import sys, time
from dask_kube import KubeCluster
cluster = KubeCluster(name=sys.argv[1], namespace=sys.argv[2], n_workers=1, idle_timeout=5, quiet=True)
cluster.wait_for_workers(1, timeout=90)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.localkube_only
def test_client_sigkilled_cluster_is_reaped_by_idle_timeout(operator: Any, namespace: str, kube: Any,
                                                            kubectl: Kubectl) -> None:
    """A SIGKILLed client runs no atexit hook: its cluster is reaped by the operator's idleTimeout."""
    started = time.monotonic()
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CLIENT), "orphaned", namespace],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the script's own wait_for_workers timeout
        assert line.strip() == "ready", line + proc.stdout.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        until(lambda: not get(kubectl, "daskcluster", "orphaned"), "the orphaned cluster to be reaped", 60)
        until(lambda: not kubectl("get", "pods", "-o", "name").stdout.strip(), "its pods to go", 60)
        reaped_after = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    events = json.loads(kubectl("get", "events", "--field-selector", "reason=IdleTimeout", "-o", "json").stdout)
    assert events["items"]
    record("test_client_sigkilled_cluster_is_reaped_by_idle_timeout", "client",
           injected="the client process (KubeCluster(idle_timeout=5)) SIGKILLed: no atexit, no close()",
           survived=f"the operator deleted the idle cluster {reaped_after:.0f}s later (IdleTimeout); no pods left",
           lost="nothing (without idle_timeout the cluster stays until deleted by hand)",
           seconds=time.monotonic() - started)


HOLDER = """
import sys, time
from dask_kube import KubeCluster
cluster = KubeCluster(name=sys.argv[1], namespace=sys.argv[2], quiet=True)
print("ready", flush=True)
time.sleep(600)
"""
LEASE_SECONDS = 8


@pytest.mark.localkube_only
def test_client_sigkilled_cluster_is_reaped_by_its_lease(operator: Any, namespace: str, kube: Any,
                                                         kubectl: Kubectl) -> None:
    """Default settings but a short lease: a SIGKILLed client's cluster goes once its Lease is not renewed, while
    a cluster whose client lives stays."""
    started = time.monotonic()
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig),
               DASK_KUBERNETES__CLIENT_LEASE_TIMEOUT=str(LEASE_SECONDS))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), "abandoned", namespace],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        with dask.config.set({"kubernetes.client-lease-timeout": LEASE_SECONDS}), \
                KubeCluster(name="held", namespace=namespace, quiet=True) as held:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the script's own resource timeout
            assert line.strip() == "ready", line + proc.stdout.read()
            lease = get(kubectl, "lease", naming.client_lease_name("abandoned"))
            assert lease["spec"]["leaseDurationSeconds"] == LEASE_SECONDS
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed_at = time.monotonic()
            until(lambda: not get(kubectl, "daskcluster", "abandoned"), "the abandoned cluster to be reaped", 90)
            reaped_after = time.monotonic() - killed_at
            until(lambda: not kubectl("get", "pods", "-l", "dask.org/cluster-name=abandoned", "-o",
                                      "name").stdout.strip(), "its pods to go", 60)
            # The held cluster has outlived two timeouts since the kill; its client renews its Lease.
            renewed = get(kubectl, "lease", naming.client_lease_name("held"))["spec"]["renewTime"]
            until(lambda: time.monotonic() - killed_at > 2 * LEASE_SECONDS, "two lease timeouts", 60)
            until(lambda: get(kubectl, "lease", naming.client_lease_name("held"))["spec"]["renewTime"] != renewed,
                  "the live client to renew its Lease", 3 * LEASE_SECONDS)
            assert get(kubectl, "daskcluster", "held")["status"]["phase"] == "Running"
            assert held.status.name == "running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not get(kubectl, "daskcluster", "held")  # closing deleted it
    events = items(kubectl, "events", "--field-selector", f"reason={naming.Reason.CLIENT_LEASE_EXPIRED}")
    assert [e["involvedObject"]["name"] for e in events] == ["abandoned"]
    # Renewals every third of the timeout, checks every third: at most 4/3 of the timeout, plus a loaded machine.
    assert reaped_after < 3 * LEASE_SECONDS, reaped_after
    record("test_client_sigkilled_cluster_is_reaped_by_its_lease", "client",
           injected=f"a client process holding a KubeCluster (default settings, client-lease-timeout "
                    f"{LEASE_SECONDS}s) SIGKILLed: no atexit, no close(); a second cluster's client alive",
           survived=f"the operator deleted the abandoned cluster {reaped_after:.0f}s after the kill "
                    "(ClientLeaseExpired); the live client's cluster stayed Running, its Lease renewed",
           lost="nothing (the default timeout is 300 s)", seconds=time.monotonic() - started)


@pytest.mark.localkube_only
def test_a_from_name_client_keeps_a_leased_cluster_until_it_closes(operator: Any, namespace: str, kube: Any,
                                                                   kubectl: Kubectl) -> None:
    """The creator SIGKILLed while a `from_name` client is connected: the cluster stays as long as that client
    renews its Lease, and goes once it closes (closing a from_name client deletes nothing itself)."""
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig),
               DASK_KUBERNETES__CLIENT_LEASE_TIMEOUT=str(LEASE_SECONDS))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), "shared", namespace],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", line + proc.stdout.read()
        with KubeCluster.from_name("shared", namespace=namespace, quiet=True):
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed_at = time.monotonic()
            renewed = get(kubectl, "lease", naming.client_lease_name("shared"))["spec"]["renewTime"]
            until(lambda: time.monotonic() - killed_at > 2 * LEASE_SECONDS, "two lease timeouts", 60)
            holder = until(lambda: get(kubectl, "lease", naming.client_lease_name("shared"))["spec"]
                           if get(kubectl, "lease", naming.client_lease_name("shared"))["spec"]["renewTime"]
                           != renewed else None, "the from_name client to renew", 3 * LEASE_SECONDS)
            assert holder["holderIdentity"].endswith(f"/{os.getpid()}")
            assert get(kubectl, "daskcluster", "shared")["status"]["phase"] == "Running"
        closed_at = time.monotonic()
        until(lambda: not get(kubectl, "daskcluster", "shared"), "the cluster to go once its last client did", 90)
        assert time.monotonic() - closed_at < 3 * LEASE_SECONDS
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
