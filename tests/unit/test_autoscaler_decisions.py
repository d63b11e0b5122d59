"""The autoscaler's decision: bounds, immediate scale-up, hysteresis and a rate limit on the way down."""

from __future__ import annotations

from typing import Any

import dask
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dask_kube import naming
from dask_kube.naming import ConditionType, Reason
from dask_kube.operator.autoscaler import (
    AutoscalerMemory,
    AutoscalerView,
    decide,
    gate,
    group_target,
    recommend,
)
from dask_kube.operator.plan import Patch
from dask_kube.operator.settings import AutoscalerSettings, OperatorSettings

WAIT_COUNT = AutoscalerSettings().scale_down_wait


@pytest.mark.parametrize(("current", "target", "minimum", "maximum", "history", "expected"), [
    pytest.param(1, 4, 1, 10, (), (4, ()), id="up-at-once"),
    pytest.param(1, 40, 1, 10, (), (10, ()), id="up-to-the-maximum"),
    pytest.param(3, 3, 1, 10, (), (3, ()), id="steady"),
    pytest.param(0, 0, 2, 10, (), (2, ()), id="below-minimum-grows-to-it"),
    pytest.param(8, 8, 1, 5, (), (5, ()), id="above-maximum-shrinks-to-it-now"),
    pytest.param(8, 0, 1, 5, (0, 0), (5, ()), id="above-maximum-ignores-history"),
    pytest.param(4, 1, 1, 10, (), (4, (1,)), id="down-waits-1"),
    pytest.param(4, 1, 1, 10, (1,), (4, (1, 1)), id="down-waits-2"),
    pytest.param(4, 1, 1, 10, (1, 1), (3, (1, 1, 1)), id="down-after-wait-count-one-step"),
    pytest.param(3, 1, 1, 10, (1, 1, 1), (2, (1, 1, 1)), id="keeps-going-down-once-started"),
    pytest.param(20, 0, 0, 100, (0, 0), (15, (0, 0, 0)), id="a-quarter-at-most"),
    pytest.param(2, 0, 0, 100, (0, 0), (1, (0, 0, 0)), id="at-least-one"),
    pytest.param(10, 2, 0, 100, (9, 5), (9, (9, 5, 2)), id="to-the-highest-recent-target"),
    pytest.param(4, 4, 1, 10, (1, 1), (4, ()), id="a-busy-pass-resets-the-wait"),
    pytest.param(4, 9, 1, 10, (1, 1), (9, ()), id="a-burst-resets-and-grows"),
    pytest.param(4, 0, 3, 10, (3, 3), (3, (3, 3, 3)), id="down-to-the-minimum-only"),
    pytest.param(3, 0, 3, 10, (3, 3), (3, ()), id="at-the-minimum-stays"),
    pytest.param(5, 5, 5, 5, (), (5, ()), id="fixed-size"),
    pytest.param(5, 1, 1, 10, (1, 1, 1, 1), (4, (1, 1, 1)), id="history-is-bounded"),
])
def test_recommend(current: int, target: int, minimum: int, maximum: int, history: tuple[int, ...],
                   expected: tuple[int, tuple[int, ...]]) -> None:
    assert recommend(current, target, minimum, maximum, history) == expected


bounds = st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted)


@given(bounds=bounds, start=st.integers(0, 40), targets=st.lists(st.integers(0, 60), min_size=1, max_size=40))
def test_recommend_invariants(bounds: list[int], start: int, targets: list[int]) -> None:
    """Simulated passes: within bounds (once inside), scale-down only after WAIT_COUNT lower targets, and by
    at most a quarter (at least one) of the group; scale-up straight to the clamped target."""
    minimum, maximum = bounds
    current, history = start, ()
    lower_streak = 0
    for target in targets:
        wanted = min(maximum, max(minimum, target))
        lower_streak = lower_streak + 1 if wanted < current else 0
        replicas, history = recommend(current, target, minimum, maximum, history)
        assert minimum <= replicas <= maximum
        if current > maximum:
            assert replicas == maximum
            lower_streak = 0
        elif wanted >= current:
            assert replicas == wanted
        else:
            assert replicas >= wanted
            if lower_streak < WAIT_COUNT:
                assert replicas == current
            else:
                assert current - replicas <= max(1, int(current * 0.25))
        current = replicas


@given(bounds=bounds, start=st.integers(0, 40), target=st.integers(0, 60))
def test_a_steady_target_is_reached(bounds: list[int], start: int, target: int) -> None:
    minimum, maximum = bounds
    current, history = start, ()
    for _ in range(WAIT_COUNT + 40):
        current, history = recommend(current, target, minimum, maximum, history)
    assert current == min(maximum, max(minimum, target))


def test_the_policy_comes_from_settings() -> None:
    """A longer wait and a larger step, as `kubernetes.operator.autoscaler.*` would set them."""
    policy = AutoscalerSettings(scale_down_wait=1, max_scale_down_fraction=0.5)
    assert recommend(20, 0, 0, 100, (), policy) == (10, (0,))
    policy = AutoscalerSettings(scale_down_wait=5)
    assert recommend(4, 1, 1, 10, (1, 1, 1), policy) == (4, (1, 1, 1, 1))


def test_settings_read_the_config() -> None:
    with dask.config.set({"kubernetes.operator.autoscaler.scale-down-wait": 7,
                          "kubernetes.operator.autoscaler.interval-seconds": 1.5}):
        settings = OperatorSettings.from_config()
    assert settings.autoscaler == AutoscalerSettings(interval_seconds=1.5, scale_down_wait=7)


@pytest.mark.parametrize(("target", "workers", "group", "expected"), [
    (5, [], "c-default", 5),
    (5, ["c-default-worker-0a1b2c3d4e", "c-default-worker-ffffffffff"], "c-default", 5),
    (5, ["c-gpu-worker-0a1b2c3d4e", "c-default-worker-ffffffffff"], "c-default", 4),
    (5, ["c-gpu-worker-0a1b2c3d4e", "c-gpu-worker-1a1b2c3d4e"], "c-default", 3),
    (1, ["c-gpu-worker-0a1b2c3d4e", "c-gpu-worker-1a1b2c3d4e"], "c-default", 0),
    (4, ["c-default-worker-0a1b2c3d4e", "tcp://10.0.0.9:4000"], "c-gpu", 2),
])
def test_group_target_leaves_other_groups_workers_out(target: int, workers: list[str], group: str,
                                                      expected: int) -> None:
    assert group_target(target, workers, group) == expected


# -- a whole sample: (what was observed, the clock) -> plan ---------------------------------------------------

SETTINGS = OperatorSettings(resync_seconds=10, autoscaler=AutoscalerSettings(interval_seconds=5))


def scaler(minimum: int = 1, maximum: int = 4, name: str = "auto", created: str = "2026-01-01T00:00:00Z",
           owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                            "creationTimestamp": created, "labels": {naming.CLUSTER_LABEL: "c"} if owned else {}}
    if owned:
        meta["ownerReferences"] = [{"uid": "uid-c", "controller": True}]
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": meta,
            "spec": {"cluster": "c", "minimum": minimum, "maximum": maximum}}


CLUSTER = {"apiVersion": naming.API_VERSION, "kind": naming.DASKCLUSTER, "metadata": {"name": "c", "uid": "uid-c"}}


def group(replicas: int, claimed_by: str | None = "auto") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c-default", "resourceVersion": "42"}
    if claimed_by is not None:
        meta["annotations"] = {naming.AUTOSCALED_BY_ANNOTATION: claimed_by}
    return {"metadata": meta, "spec": {"cluster": "c", "worker": {"replicas": replicas}}}


def sample(target: int | None, replicas: int = 1, **kwargs: Any) -> AutoscalerView:
    mine = kwargs.pop("scaler", scaler())
    return AutoscalerView(mine, CLUSTER, group(replicas, kwargs.pop("claimed_by", "auto")),
                          [mine, *kwargs.pop("others", [])], target,
                          [f"c-default-worker-{i:010x}" for i in range(replicas)])


def test_bounds_that_cannot_hold_are_reported_once_and_nothing_is_read() -> None:
    plan = gate(scaler(minimum=5, maximum=2), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan is not None and plan.requeue is None and not plan.acts
    [cond, ready] = plan.conditions or []
    assert (cond["type"], cond["reason"]) == (ConditionType.SPEC_VALID, Reason.INVALID_BOUNDS)
    assert "minimum (5)" in cond["message"] and ready["type"] == ConditionType.READY
    assert [e.reason for e in plan.events] == [Reason.INVALID_BOUNDS] and plan.memory is not None
    again = gate(scaler(minimum=5, maximum=2), plan.memory, 1.0, SETTINGS)
    assert again is not None and again.events == []


def test_one_sample_per_interval() -> None:
    early = gate(scaler(), AutoscalerMemory(sampled=100.0), 102.0, SETTINGS)
    assert early is not None and early.requeue == 3.0
    assert gate(scaler(), AutoscalerMemory(sampled=100.0), 105.0, SETTINGS) is None


def test_scale_up_patches_the_group_and_says_so() -> None:
    plan = decide(sample(target=3), AutoscalerMemory(), 50.0, SETTINGS, scaled_at="2026-01-01T00:05:00Z")
    assert plan.patch == [Patch(naming.DASKWORKERGROUP, "c-default", {"spec": {"worker": {"replicas": 3}}})]
    assert [e.reason for e in plan.events] == [Reason.AUTOSCALED] and "up from 1 to 3" in plan.events[0].message
    assert plan.status == {"observedGeneration": 1, "desiredWorkers": 3, "lastScaleTime": "2026-01-01T00:05:00Z"}
    assert plan.requeue == 5 and plan.memory == AutoscalerMemory(sampled=50.0)


def test_scale_down_waits_and_remembers_the_lower_targets() -> None:
    plan = decide(sample(target=0, replicas=4), AutoscalerMemory(), 50.0, SETTINGS)
    assert plan.patch == [] and plan.status["desiredWorkers"] == 4
    assert plan.memory == AutoscalerMemory(history=(1,), sampled=50.0)


@pytest.mark.parametrize(("observed", "reason"), [
    pytest.param(AutoscalerView(scaler()), Reason.CLUSTER_MISSING, id="no-cluster"),
    pytest.param(AutoscalerView(scaler(), CLUSTER), Reason.WORKER_GROUP_MISSING, id="no-group"),
    pytest.param(sample(2, others=[scaler(name="older", created="2025-01-01T00:00:00Z")], claimed_by=None),
                 Reason.CONFLICTING_AUTOSCALER, id="an-older-autoscaler"),
])
def test_problems_are_a_condition_an_event_and_a_resync(observed: AutoscalerView, reason: str) -> None:
    plan = decide(observed, AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch == [] and plan.requeue == SETTINGS.resync_seconds
    ready = next(c for c in plan.conditions or () if c["type"] == ConditionType.READY)
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert [(e.reason, e.warning) for e in plan.events] == [(reason, True)]


def test_the_first_to_act_claims_the_group_conditionally_on_what_it_read() -> None:
    plan = decide(sample(target=1, claimed_by=None), AutoscalerMemory(), 0.0, SETTINGS)
    claim = {"annotations": {naming.AUTOSCALED_BY_ANNOTATION: "auto"}, "resourceVersion": "42"}
    assert plan.patch == [Patch(naming.DASKWORKERGROUP, "c-default", {"metadata": claim})]
    assert plan.events == []  # no scaling: nothing to announce
    plan = decide(sample(target=3, claimed_by=None), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch == [Patch(naming.DASKWORKERGROUP, "c-default",
                                {"spec": {"worker": {"replicas": 3}}, "metadata": claim})]


def test_the_autoscaler_the_group_names_keeps_acting_even_against_an_older_one() -> None:
    older = scaler(name="older", created="2025-01-01T00:00:00Z")
    plan = decide(sample(target=3, others=[older]), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch == [Patch(naming.DASKWORKERGROUP, "c-default", {"spec": {"worker": {"replicas": 3}}})]
    plan = decide(sample(target=3, others=[older], claimed_by="older"), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch == []
    ready = next(c for c in plan.conditions or () if c["type"] == ConditionType.READY)
    assert ready["reason"] == Reason.CONFLICTING_AUTOSCALER and "older already scales" in ready["message"]


def test_a_claim_by_an_autoscaler_that_is_gone_falls_back_to_the_oldest() -> None:
    newer = scaler(name="aaa-newer", created="2027-01-01T00:00:00Z")
    plan = decide(sample(target=3, others=[newer], claimed_by="deleted-one"), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch[0].body["metadata"]["annotations"] == {naming.AUTOSCALED_BY_ANNOTATION: "auto"}
    same_second = scaler(name="aaa", created="2026-01-01T00:00:00Z")  # same creation second: the name decides
    plan = decide(sample(target=3, others=[same_second], claimed_by=None), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch == []


def test_an_unreachable_scheduler_is_a_condition_only() -> None:
    plan = decide(sample(target=None), AutoscalerMemory(), 0.0, SETTINGS)
    ready = next(c for c in plan.conditions or () if c["type"] == ConditionType.READY)
    assert ready["reason"] == Reason.SCHEDULER_STARTING and plan.events == [] and plan.requeue == 5


def test_an_autoscaler_applied_on_its_own_is_adopted() -> None:
    plan = decide(sample(1, scaler=scaler(owned=False)), AutoscalerMemory(), 0.0, SETTINGS)
    assert plan.patch[0].kind == naming.DASKAUTOSCALER
    assert plan.patch[0].body["metadata"]["ownerReferences"][-1]["uid"] == "uid-c"



# -- two autoscaled groups of one cluster share its target ----------------------------------------------------

def worker_pod(group_name: str, i: int, phase: str = "Pending") -> dict[str, Any]:
    return {"metadata": {"name": f"{group_name}-worker-{i:010x}", "labels": naming.worker_selector("c", group_name)},
            "status": {"phase": phase}}


def test_autoscaled_groups_count_each_others_pending_pods_so_their_sum_never_exceeds_the_target() -> None:
    """Two groups autoscaled towards one cluster target of 10, sampling in turn. Pods are created at once but
    their workers have not connected yet: before pending pods counted, each group chased the whole target."""
    names = {"a": "c-default", "b": "c-gpu"}
    scalers = {k: scaler(maximum=10, name=k) | {"spec": {"cluster": "c", "minimum": 0, "maximum": 10,
                                                         "workerGroup": names[k]}} for k in names}
    replicas = {"a": 0, "b": 0}
    for turn in ("a", "b", "a", "b"):
        groups = [{"metadata": {"name": names[k]}, "spec": {"cluster": "c", "worker": {"replicas": replicas[k]}}}
                  for k in names]
        pods = [worker_pod(names[k], i) for k in names for i in range(replicas[k])]
        view = AutoscalerView(scalers[turn], CLUSTER, groups[list(names).index(turn)], list(scalers.values()), 10,
                              [], groups, pods)
        plan = decide(view, AutoscalerMemory(), 50.0, SETTINGS)
        replicas[turn] = plan.status["desiredWorkers"]
        assert sum(replicas.values()) <= 10, replicas
    assert replicas == {"a": 10, "b": 0}


@pytest.mark.parametrize(("others", "pods", "workers", "expected"), [
    pytest.param({"c-gpu": 3}, [], [], 7, id="desired-replicas-of-another-group"),
    pytest.param({"c-gpu": 0}, [("c-gpu", "Pending")] * 2, [], 8, id="its-pending-pods"),
    pytest.param({"c-gpu": 0}, [("c-gpu", "Running")], ["c-gpu-worker-0000000000", "c-gpu-worker-0000000001"], 8,
                 id="its-connected-workers"),
    pytest.param({"c-gpu": 1}, [("c-gpu", "Failed"), ("c-gpu", "Succeeded")], [], 9, id="finished-pods-do-not-count"),
    pytest.param({}, [("c-default", "Pending")] * 4, [], 10, id="its-own-pods-do-not-count"),
])
def test_what_other_groups_contribute(others: dict[str, int], pods: list[tuple[str, str]], workers: list[str],
                                      expected: int) -> None:
    groups = [{"metadata": {"name": n}, "spec": {"worker": {"replicas": r}}} for n, r in others.items()]
    raw_pods = [worker_pod(g, i, phase) for i, (g, phase) in enumerate(pods)]
    assert group_target(10, workers, "c-default", groups, raw_pods) == expected
