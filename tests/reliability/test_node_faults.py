"""A worker node cut off (partitioned) under a running cluster with real Dask processes computing.

Two LocalKube nodes of the test's own (tainted, so that nothing else lands there): the scheduler and half the
workers on one, the other half on the other. The second node is partitioned (`set_ready(name, False,
reachable=False)`): its Ready condition goes Unknown, it gets the `unreachable` taints, its pods are marked
unready, its processes go silent (SIGSTOP), and its kubelet hears nothing more. The workers tolerate
`unreachable` for 2 s (instead of the 300 s the API server's defaulting gives), so the taint eviction controller
evicts them after 2 s; their pods stay Terminating, because the only kubelet that could finish them is on the far
side of the partition. Left to itself, Dask would give the silent workers up only after the scheduler's
`worker-ttl` (5 minutes by default) and 30 s more of trying to restart them through their nannies; the operator
removes them from the scheduler once their pods' grace period (30 s) has passed, and Dask recomputes what they
held. The scheduler keeps Dask's defaults here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from distributed import Client
from kr8s.objects import Pod
from localkube.controllers.nodes import UNREACHABLE_TAINT, NodeConfig
from localkube.testing import free_port

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
    tracebacks,
    until,
    worker_pods,
)

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]

POOL = "reliability.dask.org/pool"
HEALTHY, CUT = "rel-node-healthy", "rel-node-cut"
REPLICAS = 4
TASKS, TASK_SECONDS = 40, 0.4


def _node_of(pod: dict[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


@pytest.fixture
def two_nodes(local_kube: Any, kubectl: Kubectl) -> Iterator[str]:
    """Two nodes only this test's pods tolerate; removed after the test's pods are gone. Yields the pool name."""
    nodes = local_kube.kube.nodes
    pool = "partition"
    taint = {"key": POOL, "value": pool, "effect": "NoSchedule"}
    for name in (HEALTHY, CUT):
        local_kube.call(nodes.add_node, NodeConfig(name=name, labels={POOL: pool}, taints=(taint,)))
    try:
        yield pool
    finally:
        for name in (HEALTHY, CUT):  # heal first: the kubelet finishes deletions only for nodes it reaches
            local_kube.call(nodes.set_ready, name, True)
        kubectl("delete", "daskclusters", "--all", "--wait=false", check=False)
        until(lambda: not [p for p in items(kubectl, "pods") if _node_of(p) in (HEALTHY, CUT)],
              "the test's pods to go before its nodes do", 90)
        for name in (HEALTHY, CUT):
            local_kube.call(nodes.remove_node, name)


def _body(pool: str) -> dict[str, Any]:
    body = cluster_body("split", REPLICAS, simulate_workers=False)
    pool_toleration = {"key": POOL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}
    scheduler = body["spec"]["scheduler"]["spec"]
    scheduler["nodeSelector"] = {"kubernetes.io/hostname": HEALTHY}
    scheduler["tolerations"] = [pool_toleration]
    worker = body["spec"]["worker"]["spec"]
    worker["nodeSelector"] = {POOL: pool}
    worker["tolerations"] = [pool_toleration, *({"key": key, "operator": "Exists", "effect": "NoExecute",
                                                 "tolerationSeconds": 2}
                                                for key in (UNREACHABLE_TAINT, "node.kubernetes.io/not-ready"))]
    return body


def _slow_squares(client: Client) -> list[Any]:
    def slow_square(i: int) -> int:
        import time as t
        t.sleep(TASK_SECONDS)
        return i * i
    return client.map(slow_square, range(TASKS), pure=False)


def _events(kubectl: Kubectl, reason: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "events", "--field-selector", f"reason={reason}", "-o", "json").stdout)["items"]


def _spread(kubectl: Kubectl, pool: str) -> list[str]:
    """Start the cluster, its scheduler on the healthy node and workers on both; the workers on the node to cut."""
    apply(kubectl, _body(pool))
    running(kubectl, "split", ready=REPLICAS, timeout=120)
    pods = worker_pods(kubectl, "split")
    by_node = {n: sorted(p["metadata"]["name"] for p in pods if _node_of(p) == n) for n in (HEALTHY, CUT)}
    assert by_node[HEALTHY] and by_node[CUT], f"workers not spread over both nodes: {by_node}"
    assert _node_of(get(kubectl, "pod", "split-scheduler")) == HEALTHY
    return by_node[CUT]


class Cut(NamedTuple):
    client: Client
    lost: list[str]  # the worker pods on the cut node
    futures: list[Any]  # the slow squares
    total: Any  # their sum
    held: set[str]  # keys that were held on the cut node
    at: float  # time.monotonic() of the partition


@contextlib.contextmanager
def _partitioned_mid_computation(kubectl: Kubectl, namespace: str, local_kube: Any, pool: str) -> Iterator[Cut]:
    """The cluster spread over both nodes computes the slow squares and their sum through a port-forward; once 8
    are done, the node to cut is partitioned."""
    lost = _spread(kubectl, pool)
    forward = Pod.get("split-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    with forward as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(REPLICAS, timeout=60)
        futures = _slow_squares(client)
        total = client.submit(sum, futures)
        until(lambda: sum(f.status == "finished" for f in futures) >= 8, "the computation to be under way", 60,
              every=0.05)
        held = {k for k, holders in client.who_has(futures).items()
                if any(w in lost for w in _names(client, holders))}
        at = time.monotonic()
        local_kube.call(local_kube.kube.nodes.set_ready, CUT, False, reachable=False)
        yield Cut(client, lost, futures, total, held, at)


def _right_result_on_the_live_workers(cut: Cut, live: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """The sum and every square are right (what the silent workers held was recomputed) and the scheduler ends
    with exactly the live pods' workers: seconds from the partition to the result, and the live pods' names."""
    client = cut.client
    assert cut.total.result(timeout=90) == sum(i * i for i in range(TASKS))
    assert client.gather(cut.futures) == [i * i for i in range(TASKS)]
    result_after = time.monotonic() - cut.at
    live_names = sorted(p["metadata"]["name"] for p in live)
    until(lambda: sorted(_names(client, client.scheduler_info()["workers"])) == live_names,
          "the scheduler to have exactly the live pods' workers", 60,
          explain=lambda: str(sorted(_names(client, client.scheduler_info()["workers"]))))
    return result_after, live_names


def _live_workers(kubectl: Kubectl) -> list[dict[str, Any]]:
    """Exactly REPLICAS Running, not terminating, worker pods (waited for)."""
    def replaced() -> list[dict[str, Any]] | None:
        live = [p for p in worker_pods(kubectl, "split") if (p.get("status") or {}).get("phase") == "Running"]
        return live if len(live) == REPLICAS else None

    live: list[dict[str, Any]] = until(replaced, f"{REPLICAS} live Running worker pods", 60,
                                       explain=lambda: kubectl("get", "pods", "-o", "wide").stdout)
    assert {_node_of(p) for p in live} == {HEALTHY}
    return live


def test_worker_node_partitioned_during_a_computation(kubectl: Kubectl, operator: Any, namespace: str,
                                                      local_kube: Any, two_nodes: str) -> None:
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    nodes = local_kube.kube.nodes
    with _partitioned_mid_computation(kubectl, namespace, local_kube, two_nodes) as cut:
        client, lost, held_on_cut, partitioned_at = cut.client, cut.lost, cut.held, cut.at

        node = get(kubectl, "node", CUT)
        assert condition(node["status"], "Ready").get("status") == "Unknown"
        assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} >= {
            (UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}
        # Kubernetes' side: the lost pods are marked unready, then evicted after their 2 s toleration.
        until(lambda: all(condition(get(kubectl, "pod", n).get("status") or {}, "Ready").get("status") == "False"
                          for n in lost), "the cut-off node's pods to be marked not Ready", 30)
        until(lambda: all(get(kubectl, "pod", n)["metadata"].get("deletionTimestamp") for n in lost),
              "the cut-off node's pods to be evicted", 30,
              explain=lambda: kubectl("get", "pods", "-o", "wide").stdout)
        evicted_after = time.monotonic() - partitioned_at
        evictions = {e["involvedObject"]["name"] for e in _events(kubectl, "TaintManagerEviction")}
        assert set(lost) <= evictions

        # The operator's side: replacements on the healthy node, exactly REPLICAS live pods.
        live = _live_workers(kubectl)
        assert not set(lost) & {p["metadata"]["name"] for p in live}
        # Dask's side: the result is right; what the silent workers held was recomputed.
        result_after, live_names = _right_result_on_the_live_workers(cut, live)
        # Honest partition: nobody can finish the evicted pods while their node is unreachable.
        stuck = sorted(p["metadata"]["name"] for p in worker_pods(kubectl, "split", include_deleting=True)
                       if p["metadata"].get("deletionTimestamp"))
        assert stuck == sorted(lost)

        replaced_events = [e for e in _events(kubectl, "WorkerReplaced")
                           if e["involvedObject"]["name"] == "split-default"]
        said = " ".join(e["message"] for e in replaced_events)
        assert all(n in said for n in lost), said
        assert "DeletionByTaintManager" in said
        removed = " ".join(e["message"] for e in _events(kubectl, "WorkersLost"))
        assert all(n in removed for n in lost), removed

        # Healing: the kubelet hears of the evictions, stops the processes, and the pods go.
        local_kube.call(nodes.set_ready, CUT, True)
        names = exactly(kubectl, "split", REPLICAS, timeout=60)
        assert sorted(names) == live_names
        assert sorted(_names(client, client.scheduler_info()["workers"])) == live_names
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    running(kubectl, "split", ready=REPLICAS, timeout=30)
    assert orphans(kubectl) == []
    assert operator.proc.poll() is None
    failed = tracebacks(log_since(operator.log_path, offset))
    assert failed == [], failed
    record("test_worker_node_partitioned_during_a_computation", "node",
           injected=f"node {CUT} partitioned (Ready Unknown, unreachable NoExecute taint, processes silenced) "
                    f"under {len(lost)} of {REPLICAS} real workers while {TASKS} tasks of {TASK_SECONDS} s ran; "
                    f"{len(held_on_cut)} finished results were held there; node healed afterwards",
           survived=f"pods evicted {evicted_after:.0f}s after the partition (toleration 2 s) and replaced on "
                    f"{HEALTHY} (Event WorkerReplaced); correct result {result_after:.0f}s after the partition "
                    "(the operator removed the silent workers from the scheduler once their pods' 30 s grace "
                    f"period had passed, Event WorkersLost; Dask recomputed); exactly {REPLICAS} pods, no orphans; "
                    "evicted pods stayed Terminating until the node came back",
           lost=f"{len(held_on_cut)} results held on the cut-off workers (recomputed from lineage)",
           seconds=time.monotonic() - started)


def test_worker_pods_force_deleted_on_a_partitioned_node(kubectl: Kubectl, operator: Any, namespace: str,
                                                         local_kube: Any, two_nodes: str) -> None:
    """The runbook for a node that does not come back: `kubectl delete pod --force --grace-period=0`. The pods go
    at once, but their processes live on, silent, beyond the partition, and the scheduler still counts them as
    connected. With no pod left there is no grace period to wait for: the operator tells the scheduler they are
    gone once they have had no pod for PODLESS_WORKER_SECONDS (Event WorkersLost), not after Dask's worker-ttl."""
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    nodes = local_kube.kube.nodes
    with _partitioned_mid_computation(kubectl, namespace, local_kube, two_nodes) as cut:
        client, lost, held_on_cut = cut.client, cut.lost, cut.held
        kubectl("delete", "pod", *lost, "--force", "--grace-period=0")
        assert not [n for n in lost if get(kubectl, "pod", n)], "force-deleted pods are gone at once"
        assert set(lost) <= set(_names(client, client.scheduler_info()["workers"])), "yet still connected"

        live = _live_workers(kubectl)
        assert not set(lost) & {p["metadata"]["name"] for p in live}
        result_after, live_names = _right_result_on_the_live_workers(cut, live)
        removed = " ".join(e["message"] for e in _events(kubectl, "WorkersLost"))
        assert all(n in removed for n in lost) and "force-deleted" in removed, removed

        # Healing: the kubelet learns that the pods are gone and stops what is left of them.
        local_kube.call(nodes.set_ready, CUT, True)
        kubelet = local_kube.kube.kubelet
        until(lambda: not set(lost) & set(local_kube.call(lambda: [w.name for w in kubelet.workers.values()])),
              "the kubelet to stop the force-deleted pods' processes", 30)
        assert sorted(_names(client, client.scheduler_info()["workers"])) == live_names
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    assert sorted(p["metadata"]["name"] for p in worker_pods(kubectl, "split", include_deleting=True)) == live_names
    assert orphans(kubectl) == []
    failed = tracebacks(log_since(operator.log_path, offset))
    assert failed == [], failed
    record("test_worker_pods_force_deleted_on_a_partitioned_node", "node",
           injected=f"node {CUT} partitioned under {len(lost)} of {REPLICAS} real workers while {TASKS} tasks of "
                    f"{TASK_SECONDS} s ran, and their pods force-deleted at once (kubectl delete --force "
                    f"--grace-period=0); {len(held_on_cut)} finished results were held there; node healed afterwards",
           survived=f"replacements Running on {HEALTHY}; the operator removed the silent, pod-less workers from the "
                    f"scheduler (Event WorkersLost); correct result {result_after:.0f}s after the partition; on "
                    "healing the kubelet stopped the old processes; exactly the replacements left, no orphans",
           lost=f"{len(held_on_cut)} results held on the cut-off workers (recomputed from lineage)",
           seconds=time.monotonic() - started)


def _names(client: Client, workers: Any) -> list[str]:
    """Worker names (= pod names) for worker addresses, from the scheduler's view."""
    info = client.scheduler_info()["workers"]
    return [str(info[a]["name"]) if a in info else a for a in workers]


def test_scheduler_node_partitioned_cluster_recovers(kubectl: Kubectl, operator: Any, namespace: str,
                                                     local_kube: Any, two_nodes: str) -> None:
    """The scheduler's node is cut off. Its pod is evicted but stays Terminating (no kubelet can finish it), and
    with its fixed name it would block a new scheduler until the node came back: the operator force-deletes it
    once it is overdue (Event SchedulerStranded) and a new scheduler starts on the healthy node.

    The workers then still hold their connections to the old, frozen scheduler: on a real network those break at
    the TCP timeout (distributed.comm.timeouts.tcp); between LocalKube's loopback addresses the kernel of this
    machine keeps acknowledging a stopped process, so they break only when the node heals and its kubelet stops
    the old process. The workers then find the new scheduler through the Service. The scheduler's state is lost,
    as with any scheduler loss; the cluster is not."""
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    nodes = local_kube.kube.nodes
    body = _body(two_nodes)
    pool_toleration = {"key": POOL, "operator": "Equal", "value": two_nodes, "effect": "NoSchedule"}
    scheduler = body["spec"]["scheduler"]["spec"]
    scheduler["nodeSelector"] = {POOL: two_nodes}  # either node: first on the cut one (below), then the other
    scheduler["tolerations"] = [pool_toleration, {"key": UNREACHABLE_TAINT, "operator": "Exists",
                                                  "effect": "NoExecute", "tolerationSeconds": 2}]
    body["spec"]["worker"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": HEALTHY}
    body["spec"]["worker"]["replicas"] = 2
    apply(kubectl, body)
    running(kubectl, "split", ready=2, timeout=120)
    old = get(kubectl, "pod", "split-scheduler")
    # Both nodes empty when the scheduler was placed: the tie goes to the first name, the node to be cut.
    assert _node_of(old) == CUT, _node_of(old)
    assert {_node_of(p) for p in worker_pods(kubectl, "split")} == {HEALTHY}

    partitioned_at = time.monotonic()
    local_kube.call(nodes.set_ready, CUT, False, reachable=False)
    until(lambda: (get(kubectl, "pod", "split-scheduler") or {}).get("metadata", {}).get("deletionTimestamp"),
          "the scheduler pod to be evicted", 30, explain=lambda: kubectl("get", "pods", "-o", "wide").stdout)

    def replaced() -> dict[str, Any] | None:
        pod = get(kubectl, "pod", "split-scheduler")  # {} between the force-deletion and the new pod
        fresh = pod.get("metadata", {}).get("uid") not in (None, old["metadata"]["uid"])
        return pod if fresh and (pod.get("status") or {}).get("phase") == "Running" else None

    new = until(replaced, "a new scheduler pod Running", 90,
                explain=lambda: kubectl("get", "pods", "-o", "wide").stdout + operator.tail(20))
    replaced_after = time.monotonic() - partitioned_at
    assert _node_of(new) == HEALTHY
    stranded = " ".join(e["message"] for e in _events(kubectl, "SchedulerStranded"))
    assert "split-scheduler" in stranded and CUT in stranded, stranded
    until(lambda: (get(kubectl, "daskcluster", "split").get("status") or {}).get("phase") == "Running",
          "the cluster to be Running on its new scheduler", 60)

    # Healing: the old scheduler process is stopped; the workers reconnect to the new one; nothing else changes.
    local_kube.call(nodes.set_ready, CUT, True)
    until(lambda: not [p for p in items(kubectl, "pods") if _node_of(p) == CUT], "nothing left on the healed node",
          60, explain=lambda: kubectl("get", "pods", "-o", "wide").stdout)
    cluster = running(kubectl, "split", ready=2, timeout=120)
    assert condition(cluster["status"], "Ready").get("status") == "True"
    assert get(kubectl, "pod", "split-scheduler")["metadata"]["uid"] == new["metadata"]["uid"]
    assert {_node_of(p) for p in worker_pods(kubectl, "split")} == {HEALTHY}
    forward = Pod.get("split-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    with forward as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        assert sum(client.gather(_slow_squares(client))) == sum(i * i for i in range(TASKS))
    assert orphans(kubectl) == []
    failed = tracebacks(log_since(operator.log_path, offset))
    assert failed == [], failed
    record("test_scheduler_node_partitioned_cluster_recovers", "node",
           injected=f"node {CUT} partitioned under the scheduler of a Running cluster (2 workers on {HEALTHY}); "
                    "node healed afterwards",
           survived=f"the evicted scheduler pod, stuck Terminating, was force-deleted once overdue (Event "
                    f"SchedulerStranded); a new scheduler ran on {HEALTHY} {replaced_after:.0f}s after the "
                    "partition; once the node healed (the workers' connections to the frozen scheduler break only "
                    "then on LocalKube) both workers joined it and a new computation succeeded",
           lost="the scheduler's state (by design: work in flight must be resubmitted)",
           seconds=time.monotonic() - started)
