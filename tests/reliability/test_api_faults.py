"""API server faults against the real operator: error bursts, stalls, cut watches, an API server restart, and the
operator SIGKILLed in the middle of a scale. Workers are simulated (no processes); the scheduler is real, so that
scale-down goes through the same path as in production.

Each case asserts convergence to exactly the desired pods, no duplicates (names unique, the count holds for a
while after convergence) and no orphans (every pod, Service and worker group has a live owner).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reliability import (
    Kubectl,
    apply,
    cluster_body,
    exactly,
    get,
    log_since,
    orphans,
    record,
    running,
    tracebacks,
    until,
    worker_pods,
)

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]


@dataclass(frozen=True)
class Rule:
    pattern: str  # {ns} is replaced by the test's namespace
    method: str
    status: int | None
    count: int
    delay: float = 0.0
    user_agent: str | None = "kr8s"  # the operator's own requests (kubectl in the test is never hit)

    def describe(self) -> str:
        what = f"{self.status}" if self.status else f"stall {self.delay:g}s"
        if self.status and self.delay:
            what += f" after {self.delay:g}s"
        return f"{what} x{self.count} on {self.method} {self.pattern.replace('{ns}', 'NS')}"


@dataclass(frozen=True)
class Case:
    id: str
    rules: tuple[Rule, ...]
    when: str = "scale"  # "create": the rules are in place before the DaskCluster is applied
    steps: tuple[int, ...] = (12, 3)
    extra: dict[str, Any] = field(default_factory=dict)
    cut_watches: bool = False  # close every watch once the rules are in place: kopf's reconnects meet them


POD_CREATE = r"/namespaces/{ns}/pods$"  # the creates themselves (not the validating dry runs)
POD_POSTS = r"/namespaces/{ns}/pods(\?.*)?$"  # creates and server-side dry runs
STATUS = r"/namespaces/{ns}/dask(clusters|workergroups)/[^/?]+/status"

CASES = [
    Case("create-500-burst", (Rule(r"/namespaces/{ns}/services(\?.*)?$", "POST", 500, 3),
                              Rule(r"/namespaces/{ns}/daskworkergroups(\?.*)?$", "POST", 500, 3),
                              Rule(POD_POSTS, "POST", 500, 5)), when="create", steps=(6,)),
    Case("create-stalled-writes", (Rule(POD_CREATE, "POST", None, 4, delay=2.0),
                                   Rule(STATUS, "PATCH", None, 4, delay=1.5)), when="create", steps=(5,)),
    Case("scale-500-pod-creates", (Rule(POD_CREATE, "POST", 500, 10),)),
    Case("scale-409-pod-creates", (Rule(POD_CREATE, "POST", 409, 5),)),
    Case("scale-429-pod-creates-and-dry-runs", (Rule(POD_POSTS, "POST", 429, 5),), steps=(12,)),
    Case("scale-503-status-writes", (Rule(STATUS, "PATCH", 503, 20),)),
    Case("scale-stalled-pod-creates", (Rule(POD_CREATE, "POST", None, 5, delay=2.0),)),
    # The operator reads from its watches (kopf's, cluster-wide): its reads fail when a watch reconnects.
    Case("scale-500-pod-deletes-and-watches", (Rule(r"/namespaces/{ns}/pods/[^/?]+(\?.*)?$", "DELETE", 500, 10),
                                               Rule(r"/pods\?", "GET", 500, 5, user_agent="kopf")),
         cut_watches=True),
    Case("scale-slow-and-failing-watches", (Rule(r"/dask(clusters|workergroups)\?", "GET", 503, 6,
                                                 user_agent="kopf"),
                                            Rule(r"/pods\?", "GET", None, 4, delay=1.0, user_agent="kopf")),
         cut_watches=True),
]


def _install(local_kube: Any, namespace: str, rules: tuple[Rule, ...]) -> list[Any]:
    return [local_kube.call(local_kube.kube.fail_requests, r.pattern.replace("{ns}", namespace), status=r.status,
                            count=r.count, method=r.method, delay=r.delay, user_agent=r.user_agent) for r in rules]


def _disarm(local_kube: Any, handles: list[Any]) -> None:
    for handle in handles:
        local_kube.call(setattr, handle, "count", 0)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_error_bursts_and_stalls(case: Case, kubectl: Kubectl, operator: Any, namespace: str,
                                     local_kube: Any) -> None:
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    name = "flaky"
    handles: list[Any] = []
    fired: list[int] = []
    try:
        if case.when == "create":
            handles = _install(local_kube, namespace, case.rules)
            apply(kubectl, cluster_body(name, case.steps[0]))
            running(kubectl, name, timeout=120)
            exactly(kubectl, name, case.steps[0])
            fired = [r.count - h.count for r, h in zip(case.rules, handles, strict=True)]
            steps = case.steps[1:]
        else:
            apply(kubectl, cluster_body(name, 0))
            running(kubectl, name)
            steps = case.steps
        for replicas in steps:
            handles = _install(local_kube, namespace, case.rules)
            if case.cut_watches:
                local_kube.call(local_kube.kube.close_watches)
            kubectl("scale", "daskcluster", name, f"--replicas={replicas}")
            exactly(kubectl, name, replicas)
            fired = [a + r.count - h.count for a, r, h in
                     zip(fired or [0] * len(handles), case.rules, handles, strict=True)]
            _disarm(local_kube, handles)
    finally:
        _disarm(local_kube, handles)
    assert all(n > 0 for n in fired), f"a fault never fired (rules {case.rules}, fired {fired})"
    group = until(lambda: (g := get(kubectl, "daskworkergroup", f"{name}-default")).get("status", {})
                  .get("replicas") == case.steps[-1] and g, "the worker group's status to catch up")
    assert group["spec"]["worker"]["replicas"] == case.steps[-1]
    assert orphans(kubectl) == []
    running(kubectl, name, timeout=30)
    assert operator.proc.poll() is None, "the operator died"
    failed = tracebacks(log_since(operator.log_path, offset))
    record("test_api_error_bursts_and_stalls", case.id,
           injected="; ".join(f"{r.describe()} (fired {n})" for r, n in zip(case.rules, fired, strict=True))
           + f" [{case.when}]",
           survived=f"converged to exactly {' then '.join(map(str, case.steps))} worker pods; unique names; "
                    "no orphans; cluster Running",
           seconds=time.monotonic() - started, reconcile_failures_logged=len(failed))


@pytest.mark.localkube_only
def test_watches_cut_compacted_and_api_server_restarted(kubectl: Kubectl, operator: Any, namespace: str,
                                                        local_kube: Any) -> None:
    started = time.monotonic()
    apply(kubectl, cluster_body("cut", 0))
    running(kubectl, "cut")
    kube = local_kube.kube
    closed = local_kube.call(kube.close_watches)
    assert closed > 0  # the operator's watches (at least) were open
    kubectl("scale", "daskcluster", "cut", "--replicas=8")
    exactly(kubectl, "cut", 8)
    # Past the replay window: resuming watches get 410 Gone and must relist.
    local_kube.call(kube.store.compact)
    local_kube.call(kube.close_watches)
    kubectl("scale", "daskcluster", "cut", "--replicas=4")
    exactly(kubectl, "cut", 4)
    local_kube.run(kube.restart_api())
    kubectl("scale", "daskcluster", "cut", "--replicas=15")
    names = exactly(kubectl, "cut", 15)
    # Watches are back (not only the resync): a deleted pod is replaced.
    kubectl("delete", "pod", names[0], "--wait=false")
    replaced = exactly(kubectl, "cut", 15)
    assert names[0] not in replaced
    kubectl("scale", "daskcluster", "cut", "--replicas=2")
    exactly(kubectl, "cut", 2)
    running(kubectl, "cut", timeout=30)
    assert orphans(kubectl) == []
    assert operator.proc.poll() is None
    record("test_watches_cut_compacted_and_api_server_restarted", "operator",
           injected=f"all watch streams closed ({closed}); replay window compacted + watches closed (410 on "
                    "resume); API server restarted with its state",
           survived="scales issued after each fault converged (8, 4, 15, 2); a deleted pod was replaced after "
                    "the restart; no orphans", seconds=time.monotonic() - started)


@pytest.mark.localkube_only
def test_operator_sigkilled_at_20_random_points_of_a_scale(kubectl: Kubectl, operator: Any, namespace: str,
                                                           local_kube: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill points are drawn from a seeded RNG. Pod creates are slowed (one at a time, each stalled 0.4 s) so that
    the 20 kills land during the scale, with creates in flight, rather than after it."""
    rng = random.Random(9_2024)
    started = time.monotonic()
    apply(kubectl, cluster_body("phoenix", 0))
    running(kubectl, "phoenix")
    slow = local_kube.call(local_kube.kube.fail_requests, rf"/namespaces/{namespace}/pods$", status=None,
                           count=10**6, method="POST", delay=0.4)
    counts: list[int] = []
    try:
        monkeypatch.setenv("DASK_KUBERNETES__OPERATOR__CREATE_CONCURRENCY", "1")
        kubectl("scale", "daskcluster", "phoenix", "--replicas=20")
        for _ in range(20):
            operator.kill()
            operator.start()
            time.sleep(rng.uniform(0.0, 1.0))  # the random kill point, not a wait for a condition
            counts.append(len(kubectl("get", "pods", "-o", "name").stdout.split()) - 1)
        operator.kill()
        local_kube.call(setattr, slow, "count", 0)
        monkeypatch.delenv("DASK_KUBERNETES__OPERATOR__CREATE_CONCURRENCY")
        operator.start()
        exactly(kubectl, "phoenix", 20, timeout=60)
        during = [c for c in counts if 0 < c < 20]
        assert during, f"no kill landed during the scale (pod counts at the kills: {counts})"
        kubectl("scale", "daskcluster", "phoenix", "--replicas=0")
        exactly(kubectl, "phoenix", 0, timeout=60)
        assert orphans(kubectl) == []
        running(kubectl, "phoenix", timeout=30)
    finally:
        local_kube.call(setattr, slow, "count", 0)
        monkeypatch.delenv("DASK_KUBERNETES__OPERATOR__CREATE_CONCURRENCY", raising=False)
        operator.stop()
        operator.start()  # back to the session's settings
    record("test_operator_sigkilled_at_20_random_points_of_a_scale", "operator",
           injected="operator SIGKILLed 20 times (seeded random points, 0-1 s after each start) during a scale "
                    f"0->20 with creates in flight; pods at the kills: {counts}",
           survived="converged to exactly 20 worker pods, then to 0; no duplicates, no orphans",
           seconds=time.monotonic() - started)


@pytest.mark.localkube_only
def test_operator_cut_off_from_the_api_server(kubectl: Kubectl, operator: Any, namespace: str, local_kube: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition between the operator and the API server (`cut_off_clients`: its requests and the events of its
    watches are held, as packets are; kubectl and the kubelet are unaffected), longer than the operator's request
    timeout (5 s here; 60 s by default). Meanwhile the user scales the cluster up and deletes a worker pod. Nothing
    of it can happen before the cut heals; then the operator converges, having logged its failed requests as
    one-line outages, never a traceback."""
    started = time.monotonic()
    kube = local_kube.kube
    monkeypatch.setenv("DASK_KUBERNETES__OPERATOR__REQUEST_TIMEOUT_SECONDS", "5")
    try:
        operator.stop()
        operator.start()
        offset = operator.log_path.stat().st_size
        apply(kubectl, cluster_body("island", 3))
        names = exactly(kubectl, "island", 3)
        running(kubectl, "island")
        cut = local_kube.call(kube.cut_off_clients, "kopf/", "kr8s/")
        cut_at = time.monotonic()
        kubectl("scale", "daskcluster", "island", "--replicas=6")
        kubectl("delete", "pod", names[0], "--wait=false")
        # The operator's requests time out (5 s) and are tried again, across the cut, while nothing changes.
        until(lambda: cut.abandoned >= 3, "the operator to give up on requests across the cut", 60)
        # No pod created, and none but the user's deletion (which the kubelet may still be finishing).
        assert sorted(p["metadata"]["name"] for p in worker_pods(kubectl, "island")) == sorted(names[1:]), \
            "the operator acted although it was cut off"
        assert {p["metadata"]["name"] for p in worker_pods(kubectl, "island", include_deleting=True)} <= set(names)
        held, abandoned = cut.held, cut.abandoned
        local_kube.call(kube.reconnect_clients)
        healed_at = time.monotonic()
        cut_for = healed_at - cut_at
        after = exactly(kubectl, "island", 6, timeout=90)
        converged_after = time.monotonic() - healed_at
        assert names[0] not in after and set(names[1:]) <= set(after)
        until(lambda: (get(kubectl, "daskworkergroup", "island-default").get("status") or {}).get("replicas") == 6,
              "the group's status to catch up", 30)
        running(kubectl, "island", timeout=30)
        assert orphans(kubectl) == []
        assert operator.proc.poll() is None
        log = log_since(operator.log_path, offset)
        assert tracebacks(log) == [], tracebacks(log)
        assert "the API server did not answer in time" in log, operator.tail(30)
    finally:
        local_kube.call(kube.reconnect_clients)
        monkeypatch.delenv("DASK_KUBERNETES__OPERATOR__REQUEST_TIMEOUT_SECONDS", raising=False)
        operator.stop()
        operator.start()  # back to the session's settings
    record("test_operator_cut_off_from_the_api_server", "operator",
           injected=f"the operator (kopf and kr8s clients) cut off from the API server for {cut_for:.0f}s, longer "
                    f"than its request timeout (5 s): {held} requests and watch writes held, {abandoned} given up "
                    "by the operator; meanwhile the cluster scaled 3 -> 6 and a worker pod deleted with kubectl",
           survived=f"nothing changed during the cut; {converged_after:.0f}s after it healed exactly 6 pods (the "
                    "deleted one replaced), the group's status caught up, no orphans; failed requests logged as "
                    "one-line outages, no traceback", seconds=time.monotonic() - started)
