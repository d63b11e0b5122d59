"""The DaskCluster reconciler's decisions as tables: (what was observed, the clock) -> plan, with no server."""

from __future__ import annotations

from typing import Any

import pytest

from dask_kube import naming, specs, tls
from dask_kube.naming import ClusterPhase, ConditionType, Reason
from dask_kube.operator import client_leases, spec_check
from dask_kube.operator.daskcluster import (
    STRANDED_SCHEDULER_SECONDS,
    UNREACHABLE_FAST_POLL_SECONDS,
    ClusterMemory,
    ClusterView,
    SchedulerView,
    decide,
)
from dask_kube.operator.plan import Delete, Patch
from dask_kube.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(resync_seconds=10)
NOW = "2026-01-01T00:01:00Z"
VALID = spec_check.SpecCheck(valid=("uid-c", "f"))


def cluster(phase: str | None = "Pending", replicas: int = 2, *, idle_timeout: int = 0, tls_spec: Any = None,
            **status: Any) -> dict[str, Any]:
    obj = specs.make_cluster_spec("c", n_workers=replicas, idle_timeout=idle_timeout, tls=tls_spec)
    obj["metadata"].update(namespace="ns", uid="uid-c", generation=3)
    obj["status"] = {**({"phase": phase} if phase else {}), **status}
    return obj


def scheduler_pod(phase: str = "Running", **extra: Any) -> dict[str, Any]:
    raw = specs.scheduler_pod(cluster())
    raw["metadata"]["uid"] = "uid-pod"
    raw["status"] = {"phase": phase, **extra.pop("status", {})}
    raw["metadata"].update(extra)
    return raw


def default_group(replicas: int = 2, ready: int = 0) -> dict[str, Any]:
    raw = specs.default_worker_group(cluster(replicas=replicas))
    raw["status"] = {"replicas": replicas, "readyReplicas": ready, "selector": "s"}
    return raw


def view(raw: dict[str, Any], pod: dict[str, Any] | None = None, group: dict[str, Any] | None = None,
         reachable: bool = False, **kwargs: Any) -> ClusterView:
    return ClusterView(raw, kwargs.pop("spec", VALID), kwargs.pop("service", True), pod,
                       group=group, scheduler=SchedulerView(reachable, kwargs.pop("idle_since", None)), now=NOW,
                       **kwargs)


def conds(plan: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in plan.conditions or ()}


def test_an_operator_says_at_once_that_it_saw_the_cluster() -> None:
    plan = decide(ClusterView(cluster(phase=None)), ClusterMemory(), 0.0, SETTINGS)
    assert plan.status == {"phase": ClusterPhase.CREATED} and plan.requeue == 0 and not plan.acts


def test_a_new_cluster_gets_its_service_pod_and_default_group() -> None:
    plan = decide(view(cluster(), service=False), ClusterMemory(), 0.0, SETTINGS)
    assert [b["kind"] for b in plan.create] == ["Service", "Pod", naming.DASKWORKERGROUP]
    assert plan.status["phase"] == ClusterPhase.PENDING and plan.status["appliedWorkerReplicas"] == 2
    assert conds(plan)[ConditionType.SCHEDULER_READY]["message"] == "the scheduler pod is being created"
    assert plan.events == [] and plan.requeue is None


def test_an_invalid_spec_is_an_error_reported_once() -> None:
    observed = view(cluster(), spec=spec_check.SpecCheck(error="spec.worker.spec: nope"))
    plan = decide(observed, ClusterMemory(), 0.0, SETTINGS)
    assert plan.status["phase"] == ClusterPhase.ERROR and not plan.acts
    assert conds(plan)[ConditionType.SPEC_VALID]["reason"] == Reason.INVALID_SPEC
    assert [(e.reason, e.warning) for e in plan.events] == [(Reason.INVALID_SPEC, True)]
    assert plan.memory is not None
    assert decide(observed, plan.memory, 1.0, SETTINGS).events == []


def test_a_running_scheduler_that_answers_makes_the_cluster_running() -> None:
    plan = decide(view(cluster(), scheduler_pod(), default_group(ready=2), reachable=True), ClusterMemory(), 0.0,
                  SETTINGS)
    assert plan.status["phase"] == ClusterPhase.RUNNING and plan.status["readyReplicas"] == 2
    assert {t: c["status"] for t, c in conds(plan).items()} == {
        ConditionType.SPEC_VALID: "True", ConditionType.SCHEDULER_READY: "True",
        ConditionType.WORKERS_READY: "True", ConditionType.READY: "True", ConditionType.SCHEDULER_UPDATED: "True"}
    assert plan.status["schedulerPodUID"] == "uid-pod" and "is Running" in plan.log
    assert plan.create == [] and plan.requeue is None


def test_a_started_scheduler_is_polled_fast_then_slowly() -> None:
    observed = view(cluster(), scheduler_pod(), default_group())
    plan = decide(observed, ClusterMemory(), 100.0, SETTINGS)
    assert plan.requeue == 1.0 and plan.memory is not None and plan.memory.unreachable_since == 100.0
    later = decide(observed, plan.memory, 100.0 + UNREACHABLE_FAST_POLL_SECONDS, SETTINGS)
    assert later.requeue == SETTINGS.resync_seconds


def test_a_crash_looping_scheduler_is_explained_with_its_logs_once() -> None:
    waiting = {"containerStatuses": [{"name": "scheduler", "state": {"waiting": {
        "reason": "CrashLoopBackOff", "message": "back-off 10s"}}}]}
    observed = view(cluster(), scheduler_pod(status=waiting), default_group(), logs="boom")
    plan = decide(observed, ClusterMemory(), 0.0, SETTINGS)
    sched = conds(plan)[ConditionType.SCHEDULER_READY]
    assert sched["reason"] == Reason.SCHEDULER_CRASH_LOOP and sched["message"].endswith("last log lines:\nboom")
    assert [(e.reason, e.warning) for e in plan.events] == [(Reason.SCHEDULER_CRASH_LOOP, True)]
    again = cluster(conditions=plan.conditions, **{k: v for k, v in plan.status.items() if k != "phase"})
    assert plan.memory is not None
    assert decide(view(again, observed.pod, observed.group, logs="boom"), plan.memory, 1.0, SETTINGS).events == []


def test_a_finished_scheduler_pod_is_deleted_at_once_and_recreated_later() -> None:
    plan = decide(view(cluster(), scheduler_pod("Failed"), default_group()), ClusterMemory(), 0.0, SETTINGS)
    assert plan.delete == [Delete("Pod", naming.scheduler_name("c"), grace_period=0)] and plan.create == []
    recreate = decide(view(cluster(schedulerPodUID="uid-pod"), None, default_group()), ClusterMemory(), 0.0, SETTINGS)
    assert [b["kind"] for b in recreate.create] == ["Pod"]
    assert [e.reason for e in recreate.events] == [Reason.SCHEDULER_RECREATED]


@pytest.mark.parametrize(("deleted", "stranded"), [("2026-01-01T00:00:55Z", False), ("2026-01-01T00:00:40Z", True)])
def test_a_scheduler_pod_stuck_terminating_is_force_deleted(deleted: str, stranded: bool) -> None:
    pod = scheduler_pod(deletionTimestamp=deleted)
    plan = decide(view(cluster(), pod, default_group()), ClusterMemory(), 0.0, SETTINGS)
    assert bool(plan.delete) == stranded and [e.reason for e in plan.events] == (
        [Reason.SCHEDULER_STRANDED] if stranded else [])
    if not stranded:  # a stranded pod sends no events: the loop looks again when it would count as one
        assert plan.requeue == STRANDED_SCHEDULER_SECONDS - 5


def test_replicas_flow_both_ways_between_cluster_and_default_group() -> None:
    scaled_cluster = decide(view(cluster(replicas=5, appliedWorkerReplicas=2), scheduler_pod(), default_group(2)),
                            ClusterMemory(), 0.0, SETTINGS)
    assert scaled_cluster.patch == [Patch(naming.DASKWORKERGROUP, "c-default", {"spec": {"worker": {"replicas": 5}}})]
    assert scaled_cluster.status["appliedWorkerReplicas"] == 5
    scaled_group = decide(view(cluster(replicas=2, appliedWorkerReplicas=2), scheduler_pod(), default_group(4)),
                          ClusterMemory(), 0.0, SETTINGS)
    assert scaled_group.patch == [Patch(naming.DASKCLUSTER, "c", {"spec": {"worker": {"replicas": 4}}})]
    assert scaled_group.status["appliedWorkerReplicas"] == 4


def test_an_idle_cluster_deletes_itself_after_its_timeout_on_the_operators_clock() -> None:
    observed = view(cluster(idle_timeout=60), scheduler_pod(), default_group(), reachable=True, idle_since=5.0)
    first = decide(observed, ClusterMemory(), 1000.0, SETTINGS)
    assert not first.delete_self and first.memory is not None and first.memory.idle == (5.0, 1000.0)
    assert first.requeue == SETTINGS.resync_seconds
    later = decide(observed, first.memory, 1059.0, SETTINGS)
    assert not later.delete_self and later.requeue == 1.0
    done = decide(observed, first.memory, 1060.0, SETTINGS)
    assert done.delete_self and [e.reason for e in done.events] == [Reason.IDLE_TIMEOUT]
    busy = decide(view(cluster(idle_timeout=60), scheduler_pod(), default_group(), reachable=True), first.memory,
                  1060.0, SETTINGS)
    assert not busy.delete_self and busy.memory is not None and busy.memory.idle is None


def leased(seconds: str = "30") -> dict[str, Any]:
    raw = cluster("Running")
    raw["metadata"]["annotations"] = {naming.CLIENT_LEASE_ANNOTATION: seconds}
    return raw


def lease(renewed: str, owner: str = "uid-c") -> dict[str, Any]:
    raw = specs.client_lease(leased(), 30, "me", renewed)
    raw["metadata"]["ownerReferences"][0]["uid"] = owner
    return raw


def test_a_leased_cluster_goes_once_no_client_renewed_it_for_its_timeout_on_the_operators_clock() -> None:
    running = dict(pod=scheduler_pod(), group=default_group(), reachable=True)
    first = decide(view(leased(), lease=lease("2020-01-01T00:00:00.000000Z"), **running), ClusterMemory(), 1000.0,
                   SETTINGS)
    # A renewTime far in the past counts from when the operator saw it: a client's clock never reaps early.
    assert not first.delete_self and first.requeue == 10.0 and first.memory is not None
    renewed = decide(view(leased(), lease=lease("2020-01-01T00:00:20.000000Z"), **running), first.memory, 1025.0,
                     SETTINGS)
    assert not renewed.delete_self and renewed.requeue == 10.0 and renewed.memory is not None
    quiet = view(leased(), lease=lease("2020-01-01T00:00:20.000000Z"), **running)
    assert decide(quiet, renewed.memory, 1049.0, SETTINGS).requeue == 6.0
    gone = decide(quiet, renewed.memory, 1055.0, SETTINGS)
    assert gone.delete_self and not gone.create and gone.status == {}
    assert [e.reason for e in gone.events] == [Reason.CLIENT_LEASE_EXPIRED] and "30s" in gone.events[0].message


def test_a_leased_clusters_lease_is_read_only_when_due_and_never_expires_on_a_stale_reading() -> None:
    running = dict(pod=scheduler_pod(), group=default_group(), reachable=True)
    first = decide(view(leased(), lease=lease("2026-01-01T00:00:00.000000Z"), **running), ClusterMemory(), 0.0,
                   SETTINGS)
    seen = first.memory.lease if first.memory else None
    assert seen is not None and seen.looked == 0.0
    assert not client_leases.due(seen, 30, 9.9) and client_leases.due(seen, 30, 10.0)
    # Woken by a pod event 4 s later: not read, and the next read is when it is due.
    woken = decide(view(leased(), lease_read=False, **running), first.memory, 4.0, SETTINGS)
    assert not woken.delete_self and woken.requeue == 6.0 and woken.memory is not None
    assert woken.memory.lease == seen
    # Read at 20 (same renewal), then woken at 30 without a read: 30 s quiet, but deleted only on a fresh read.
    looked = decide(view(leased(), lease=lease("2026-01-01T00:00:00.000000Z"), **running), first.memory, 20.0,
                    SETTINGS)
    assert looked.memory is not None and looked.memory.lease is not None
    assert client_leases.due(looked.memory.lease, 30, 30.0)
    stale = decide(view(leased(), lease_read=False, **running), looked.memory, 30.0, SETTINGS)
    assert not stale.delete_self and stale.requeue == 1.0


@pytest.mark.parametrize("raw,held", [
    (leased(), None),                                   # the client died between the DaskCluster and its Lease
    (leased(), lease("2026-01-01T00:00:00.000000Z", owner="uid-old")),  # an earlier cluster's Lease: not a renewal
])
def test_a_leased_cluster_without_a_lease_of_its_own_goes_after_its_timeout(raw: Any, held: Any) -> None:
    first = decide(view(raw, scheduler_pod(), default_group(), reachable=True, lease=held), ClusterMemory(), 0.0,
                   SETTINGS)
    assert first.memory is not None and not first.delete_self
    assert decide(view(raw, scheduler_pod(), default_group(), reachable=True, lease=held), first.memory, 30.0,
                  SETTINGS).delete_self


@pytest.mark.parametrize("annotation", [None, "0", "-5", "soon"])
def test_a_cluster_without_a_valid_lease_annotation_is_never_reaped(annotation: str | None) -> None:
    raw = cluster("Running")
    if annotation is not None:
        raw["metadata"]["annotations"] = {naming.CLIENT_LEASE_ANNOTATION: annotation}
    plan = decide(view(raw, scheduler_pod(), default_group(), reachable=True), ClusterMemory(), 0.0, SETTINGS)
    later = decide(view(raw, scheduler_pod(), default_group(), reachable=True), plan.memory or ClusterMemory(),
                   1e6, SETTINGS)
    assert not later.delete_self and later.memory is not None and later.memory.lease is None


def test_the_lease_annotation_never_reaches_a_clusters_children() -> None:
    children = [specs.scheduler_pod(leased()), specs.scheduler_service(leased()), specs.default_worker_group(leased())]
    assert all(naming.CLIENT_LEASE_ANNOTATION not in (c["metadata"].get("annotations") or {}) for c in children)


def test_a_tls_cluster_generates_its_secret_before_its_scheduler() -> None:
    raw = cluster(tls_spec=specs.tls_spec())
    data = tls.generate("c", "ns").secret_data()
    plan = decide(view(raw, new_secret_data=data), ClusterMemory(), 0.0, SETTINGS)
    assert [b["kind"] for b in plan.create] == ["Secret"] and plan.requeue == 0
    assert [e.reason for e in plan.events] == [Reason.TLS_SECRET_CREATED]
    secret = {**specs.tls_secret(raw, data), "metadata": {
        **specs.tls_secret(raw, data)["metadata"], "ownerReferences": [{"uid": "uid-c", "controller": True}]}}
    ready = decide(view(raw, secret=secret), ClusterMemory(), 0.0, SETTINGS)
    assert [b["kind"] for b in ready.create] == ["Pod", naming.DASKWORKERGROUP]
    assert ready.status["tlsSecretName"] == naming.tls_secret_name("c")


@pytest.mark.parametrize(("secret_name", "secret", "says"), [
    ("mine", None, "Secret mine (spec.tls.secretName) does not exist"),
    (None, {"metadata": {"name": "c-tls", "ownerReferences": [{"uid": "an-old-cluster", "controller": True}]},
            "data": {}}, "was not generated for this cluster"),
    ("mine", {"metadata": {"name": "mine"}, "data": {"ca.crt": "eA=="}}, "has no key 'tls.crt'"),
])
def test_a_tls_secret_that_cannot_be_used_blocks_the_scheduler(secret_name: str | None, secret: Any,
                                                               says: str) -> None:
    plan = decide(view(cluster(tls_spec=specs.tls_spec(secret_name=secret_name)), secret=secret), ClusterMemory(),
                  0.0, SETTINGS)
    assert [b["kind"] for b in plan.create] == []  # the Service exists; no pod without a usable Secret
    assert plan.status["phase"] == ClusterPhase.PENDING
    sched = conds(plan)[ConditionType.SCHEDULER_READY]
    assert sched["reason"] == Reason.TLS_SECRET_INVALID and says in sched["message"]
    assert [(e.reason, e.warning) for e in plan.events] == [(Reason.TLS_SECRET_INVALID, True)]
    assert plan.requeue == SETTINGS.resync_seconds  # Secrets are not watched


def test_the_schedulers_distributed_version_goes_to_the_status_once_per_pod() -> None:
    answered = ClusterView(cluster(), VALID, True, scheduler_pod(), group=default_group(),
                           scheduler=SchedulerView(True, None, "2024.1.0"), now=NOW)
    plan = decide(answered, ClusterMemory(), 0.0, SETTINGS)
    assert plan.status["distributedVersion"] == "2024.1.0"
    assert plan.memory is not None and plan.memory.scheduler_version == ("uid-pod", "2024.1.0")
    unreachable = decide(view(cluster(status={"distributedVersion": "2024.1.0"}), scheduler_pod(), default_group()),
                         ClusterMemory(), 0.0, SETTINGS)
    assert "distributedVersion" not in unreachable.status  # the last version known stays until a scheduler answers
