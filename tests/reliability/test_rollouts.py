"""A worker image change rolls out: every worker replaced, data retired first, never more than maxUnavailable
workers missing nor more than maxSurge pods extra (real Dask processes, scattered data that cannot be recomputed).
A scheduler template change is not rolled: the cluster says it waits for the next scheduler start."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from distributed import Client
from kr8s.objects import Pod
from localkube.testing import free_port

from dask_kube import naming
from tests.reliability import (
    Kubectl,
    apply,
    cluster_body,
    condition,
    log_since,
    orphans,
    record,
    running,
    status,
    tracebacks,
    until,
    worker_pods,
)

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]

REPLICAS, SURGE, UNAVAILABLE = 4, 1, 1
KEYS_PER_WORKER, KEY_BYTES = 20, 64 << 10
NEW_IMAGE = "ghcr.io/dask/dask:2025.4.1"


def _running_workers(client: Client) -> int:
    def count(dask_scheduler: Any) -> int:
        return sum(ws.status.name == "running" for ws in dask_scheduler.workers.values())
    return int(client.run_on_scheduler(count))


class Watcher(threading.Thread):
    """Samples, until stopped, the fewest running workers the scheduler had and the most worker pods alive."""

    def __init__(self, client: Client, kubectl: Kubectl) -> None:
        super().__init__(daemon=True)
        self.client, self.kubectl = client, kubectl
        self.fewest_running, self.most_pods, self.samples = REPLICAS, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.fewest_running = min(self.fewest_running, _running_workers(self.client))
            self.most_pods = max(self.most_pods, len(worker_pods(self.kubectl, "rolled")))
            self.samples += 1


def test_a_worker_image_change_rolls_out_within_its_bounds_losing_no_key(
        kubectl: Kubectl, operator: Any, namespace: str) -> None:
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    body = cluster_body("rolled", REPLICAS, simulate_workers=False)
    body["spec"]["worker"]["rollingUpdate"] = {"maxSurge": SURGE, "maxUnavailable": UNAVAILABLE}
    apply(kubectl, body)
    running(kubectl, "rolled", ready=REPLICAS, timeout=120)
    before = {p["metadata"]["name"] for p in worker_pods(kubectl, "rolled")}

    forward = Pod.get("rolled-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    with forward as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(REPLICAS, timeout=60)
        futures, expected = [], []
        for address in client.scheduler_info()["workers"]:
            values = [bytes([i]) * KEY_BYTES for i in range(KEYS_PER_WORKER)]
            futures += client.scatter(values, workers=[address], broadcast=False, hash=False)
            expected += values

        watcher = Watcher(client, kubectl)
        watcher.start()
        rolled_at = time.monotonic()
        kubectl("patch", "daskcluster", "rolled", "--type=json", "-p",
                f'[{{"op": "replace", "path": "/spec/worker/spec/containers/0/image", "value": "{NEW_IMAGE}"}}]')

        def rolled_out() -> bool:
            st = status(kubectl, "daskworkergroup", "rolled-default")
            pods = worker_pods(kubectl, "rolled", include_deleting=True)
            return (condition(st, "WorkersUpdated").get("status") == "True" and st.get("updatedReplicas") == REPLICAS
                    and len(pods) == REPLICAS and not before & {p["metadata"]["name"] for p in pods})

        until(rolled_out, "every worker replaced on the new image", 240,
              explain=lambda: kubectl("get", "pods", "-o", "wide").stdout + str(
                  status(kubectl, "daskworkergroup", "rolled-default")))
        took = time.monotonic() - rolled_at
        watcher.done.set()
        watcher.join(30)

        assert watcher.samples > 5, watcher.samples
        assert watcher.fewest_running >= REPLICAS - UNAVAILABLE, watcher.fewest_running
        assert watcher.most_pods <= REPLICAS + SURGE, watcher.most_pods
        assert {p["spec"]["containers"][0]["image"] for p in worker_pods(kubectl, "rolled")} == {NEW_IMAGE}
        client.wait_for_workers(REPLICAS, timeout=60)
        assert client.gather(futures) == expected  # scattered: had a key been lost, it would be gone
        events = kubectl("get", "events", "--field-selector", "reason=RollingOut", "-o",
                         "jsonpath={.items[*].message}").stdout
        assert all(n in events for n in before), events

        # The scheduler is not rolled: the cluster says the change waits for the next scheduler start.
        kubectl("patch", "daskcluster", "rolled", "--type=json", "-p",
                f'[{{"op": "replace", "path": "/spec/scheduler/spec/containers/0/image", "value": "{NEW_IMAGE}"}}]')
        pending = until(lambda: condition(status(kubectl, "daskcluster", "rolled"), "SchedulerUpdated").get(
            "reason") == "SchedulerRestartPending" and status(kubectl, "daskcluster", "rolled"),
            "the cluster to say the scheduler change waits for a restart", 60)
        assert "delete pod rolled-scheduler" in condition(pending, "SchedulerUpdated")["message"]
        assert client.gather(futures[:1]) == expected[:1], "the scheduler kept running"
    pod_hash = Pod.get("rolled-scheduler", namespace=namespace).annotations[naming.TEMPLATE_HASH_ANNOTATION]
    kubectl("delete", "pod", "rolled-scheduler")
    until(lambda: condition(status(kubectl, "daskcluster", "rolled"), "SchedulerUpdated").get("status") == "True",
          "the restarted scheduler to be on the current template", 90)
    assert Pod.get("rolled-scheduler", namespace=namespace).annotations[naming.TEMPLATE_HASH_ANNOTATION] != pod_hash
    running(kubectl, "rolled", ready=REPLICAS, timeout=120)
    assert orphans(kubectl) == []
    failed = tracebacks(log_since(operator.log_path, offset))
    assert failed == [], failed
    record("test_a_worker_image_change_rolls_out_within_its_bounds_losing_no_key", "rollouts",
           injected=f"worker image changed on a DaskCluster of {REPLICAS} real workers, each holding "
                    f"{KEYS_PER_WORKER} scattered keys (maxSurge {SURGE}, maxUnavailable {UNAVAILABLE}); then the "
                    "scheduler image",
           survived=f"all {REPLICAS} workers replaced in {took:.0f}s, each retired first (Event RollingOut); at "
                    f"least {watcher.fewest_running} running workers and at most {watcher.most_pods} worker pods at "
                    f"any of {watcher.samples} samples; every key still in memory; the scheduler change showed as "
                    "SchedulerRestartPending until the scheduler pod was deleted",
           seconds=time.monotonic() - started)
