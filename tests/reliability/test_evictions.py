"""`kubectl drain` of the node holding 3 of 4 workers while they hold scattered data: every key survives.

Two LocalKube nodes of the test's own (tainted, so that nothing else lands there); the scheduler runs on the
default node. Three workers start while the node to keep is cordoned, so they land on the node to drain; the fourth
starts on the node to keep. Every worker then holds scattered keys (no lineage: a key lost is gone for good).
`kubectl drain` evicts the three through the Eviction API; their preStop hooks hold SIGTERM back while the operator
retires them, their data moves to the workers that stay, and the replacements start on the node kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client
from kr8s.objects import Pod
from localkube.controllers.nodes import NodeConfig
from localkube.testing import free_port

from dask_kube import naming, specs, tls
from tests.reliability import (
    Kubectl,
    apply,
    cluster_body,
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

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]

POOL = "reliability.dask.org/pool"
KEEP, DRAIN = "ev-node-keep", "ev-node-drain"
KEYS_PER_WORKER, KEY_BYTES = 25, 64 << 10


def _node_of(pod: dict[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


@pytest.fixture
def two_nodes(local_kube: Any, kubectl: Kubectl) -> Iterator[str]:
    """Two nodes only this test's workers tolerate; removed once the test's pods are gone. Yields the pool."""
    nodes = local_kube.kube.nodes
    pool = "drain"
    taint = {"key": POOL, "value": pool, "effect": "NoSchedule"}
    for name in (KEEP, DRAIN):
        local_kube.call(nodes.add_node, NodeConfig(name=name, labels={POOL: pool}, taints=(taint,)))
    try:
        yield pool
    finally:
        kubectl("delete", "daskclusters", "--all", "--wait=false", check=False)
        until(lambda: not [p for p in items(kubectl, "pods") if _node_of(p) in (KEEP, DRAIN)],
              "the test's pods to go before its nodes do", 150)
        for name in (KEEP, DRAIN):
            local_kube.call(nodes.remove_node, name)


def _body(pool: str, replicas: int) -> dict[str, Any]:
    body = cluster_body("drained", replicas, simulate_workers=False)
    worker = body["spec"]["worker"]["spec"]
    worker["nodeSelector"] = {POOL: pool}
    worker["tolerations"] = [{"key": POOL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}]
    return body


def _events(kubectl: Kubectl, reason: str) -> str:
    out = kubectl("get", "events", "--field-selector", f"reason={reason}", "-o", "json").stdout
    return " ".join(e["message"] for e in json.loads(out)["items"])


def _placed(kubectl: Kubectl) -> dict[str, list[str]]:
    pods = worker_pods(kubectl, "drained")
    return {n: sorted(p["metadata"]["name"] for p in pods if _node_of(p) == n) for n in (KEEP, DRAIN)}


def test_drain_of_a_node_holding_three_of_four_workers_loses_no_key(
        kubectl: Kubectl, operator: Any, namespace: str, two_nodes: str) -> None:
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    kubectl("cordon", KEEP)
    apply(kubectl, _body(two_nodes, 3))
    running(kubectl, "drained", ready=3, timeout=120)
    kubectl("uncordon", KEEP)
    kubectl("cordon", DRAIN)
    kubectl("patch", "daskcluster", "drained", "--type=merge", "-p", '{"spec": {"worker": {"replicas": 4}}}')
    running(kubectl, "drained", ready=4, timeout=120)
    placed = _placed(kubectl)
    assert len(placed[DRAIN]) == 3 and len(placed[KEEP]) == 1, placed
    kubectl("uncordon", DRAIN)

    forward = Pod.get("drained-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    with forward as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(4, timeout=60)
        by_name = {str(info["name"]): address for address, info in client.scheduler_info()["workers"].items()}
        futures, expected = [], []
        for name in placed[DRAIN] + placed[KEEP]:
            values = [bytes([i % 251]) * KEY_BYTES for i in range(KEYS_PER_WORKER)]
            futures += client.scatter(values, workers=[by_name[name]], broadcast=False, hash=False)
            expected += values
        on_drain = {k for k, holders in client.who_has(futures).items()
                    if {by_name[n] for n in placed[DRAIN]} & set(holders)}
        assert len(on_drain) == 3 * KEYS_PER_WORKER

        drain_started = time.monotonic()
        out = kubectl("drain", DRAIN, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s",
                      timeout=180)
        drained_after = time.monotonic() - drain_started
        assert "drained" in out.stdout, out.stdout + out.stderr
        assert not [p for p in worker_pods(kubectl, "drained", include_deleting=True) if _node_of(p) == DRAIN]

        # Every key is still in memory, on workers that stay: nothing was recomputed (scattered data cannot be).
        assert client.gather(futures) == expected
        holders = {a for hs in client.who_has(futures).values() for a in hs}
        assert holders and holders <= set(client.scheduler_info()["workers"])
        retired = _events(kubectl, "EvictedWorkersRetired")
        assert all(n in retired for n in placed[DRAIN]), retired
        replaced = _events(kubectl, "WorkerReplaced")
        assert "EvictionByEvictionAPI" in replaced, replaced

        running(kubectl, "drained", ready=4, timeout=120)
        assert {_node_of(p) for p in worker_pods(kubectl, "drained")} == {KEEP}
        client.wait_for_workers(4, timeout=60)
        assert client.gather(futures) == expected
    assert orphans(kubectl) == []
    failed = tracebacks(log_since(operator.log_path, offset))
    assert failed == [], failed
    record("test_drain_of_a_node_holding_three_of_four_workers_loses_no_key", "evictions",
           injected=f"kubectl drain of the node holding 3 of 4 real workers, each holding {KEYS_PER_WORKER} "
                    f"scattered keys of {KEY_BYTES >> 10} KiB (no lineage)",
           survived=f"drain finished in {drained_after:.0f}s: the evicted workers were retired at once (Event "
                    "EvictedWorkersRetired) while their preStop hooks held SIGTERM back; every key still in memory "
                    "on the workers that stay; replacements Running on the other node, 4 ready; no orphans",
           seconds=time.monotonic() - started)


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_a_worker_deleted_while_the_operator_is_down_retires_itself(
        kubectl: Kubectl, operator: Any, namespace: str, use_tls: bool) -> None:
    """Nobody retires the worker: after a few seconds its preStop hook asks the scheduler itself (over TLS too,
    with the certificates the operator gives every container)."""
    started = time.monotonic()
    body = cluster_body("alone", 2, simulate_workers=False)
    if use_tls:
        body["spec"]["tls"] = specs.tls_spec()
    apply(kubectl, body)
    running(kubectl, "alone", ready=2, timeout=120)
    security: Any = None
    if use_tls:
        secret = naming.tls_secret_name("alone")
        security = tls.from_secret_data(get(kubectl, "secret", secret)["data"], secret).security()
    forward = Pod.get("alone-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    scheme = "tls" if use_tls else "tcp"
    with forward as port, Client(f"{scheme}://127.0.0.1:{port}", security=security, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        victim = worker_pods(kubectl, "alone")[0]["metadata"]["name"]
        address = next(a for a, info in client.scheduler_info()["workers"].items() if info["name"] == victim)
        values = [bytes([i]) * KEY_BYTES for i in range(KEYS_PER_WORKER)]
        futures = client.scatter(values, workers=[address], broadcast=False, hash=False)
        operator.stop()
        try:
            kubectl("delete", "pod", victim, "--wait=false")
            until(lambda: victim not in {str(i["name"]) for i in client.scheduler_info()["workers"].values()},
                  "the deleted pod's worker to leave the scheduler", 60)
            assert client.gather(futures) == values
            assert all(address not in hs for hs in client.who_has(futures).values())
        finally:
            operator.start()
        running(kubectl, "alone", ready=2, timeout=120)
    assert orphans(kubectl) == []
    record("test_a_worker_deleted_while_the_operator_is_down_retires_itself", f"evictions-{scheme}",
           injected=f"operator stopped; kubectl delete pod of a real worker holding {KEYS_PER_WORKER} scattered keys"
                    + (" (TLS cluster)" if use_tls else ""),
           survived="its preStop hook, finding the worker still running after 5 s, retired it through the "
                    "scheduler: every key moved to the other worker; the restarted operator replaced the pod",
           seconds=time.monotonic() - started)


def test_a_scheduler_with_a_disruption_budget_is_not_evicted(kubectl: Kubectl, operator: Any, namespace: str,
                                                             kube: Any) -> None:
    body = cluster_body("guarded", 0)
    body["spec"]["scheduler"]["disruptionBudget"] = True
    apply(kubectl, body)
    running(kubectl, "guarded", timeout=120)

    def budget() -> dict[str, Any]:
        return get(kubectl, "poddisruptionbudget", "guarded-scheduler")

    until(lambda: (budget().get("status") or {}).get("currentHealthy") == 1, "the scheduler's budget to count it")
    assert budget()["spec"]["minAvailable"] == 1
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "guarded-scheduler", "namespace": namespace}}
    code, answer = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods/guarded-scheduler/eviction", eviction)
    assert code == 429, answer
    assert not get(kubectl, "pod", "guarded-scheduler")["metadata"].get("deletionTimestamp")

    kubectl("patch", "daskcluster", "guarded", "--type=merge", "-p",
            '{"spec": {"scheduler": {"disruptionBudget": false}}}')
    until(lambda: not budget(), "the budget to go once the spec no longer asks for it")
    assert status(kubectl, "daskcluster", "guarded").get("schedulerDisruptionBudget") is False
    record("test_a_scheduler_with_a_disruption_budget_is_not_evicted", "evictions",
           injected="Eviction API POST for the scheduler pod of a cluster with spec.scheduler.disruptionBudget",
           survived="refused with 429 by the operator's PodDisruptionBudget (minAvailable 1); the scheduler kept "
                    "running; the budget was deleted when the spec stopped asking for it")
