"""The worker-group planner: exact counts, never-joined first, retire the idle and empty, wait when blind."""

from __future__ import annotations

import pytest

from dask_kube import naming, status
from dask_kube.operator.worker_pods import (
    PodView,
    WorkerView,
    capped_replicas,
    joined,
    overdue_workers,
    plan_worker_group,
    podless_workers,
)


def pod(name: str, phase: str = "Running", ip: str | None = "x", created: str = "2026-01-01T00:00:00Z",
        **kw: object) -> PodView:
    return PodView(name=name, phase=phase, ip=None if ip is None else (ip if ip != "x" else f"127.9.0.{name[-1]}"),
                   created=created, **kw)  # type: ignore[arg-type]


def worker(name: str, busy: int = 0, stored: int = 0, host: str = "") -> WorkerView:
    return WorkerView(name=name, host=host, busy=busy, stored=stored)


@pytest.mark.parametrize("desired,pods,workers,create,delete,retire", [
    pytest.param(3, [], [], 3, [], [], id="from-zero"),
    pytest.param(2, [pod("p1"), pod("p2")], [worker("p1"), worker("p2")], 0, [], [], id="steady"),
    pytest.param(3, [pod("p1"), pod("p2", deleting=True)], [worker("p1")], 2, [], [], id="terminating-not-counted"),
    pytest.param(2, [pod("p1"), pod("p2", phase="Failed")], [worker("p1")], 1, ["p2"], [], id="failed-replaced"),
    pytest.param(1, [pod("p1"), pod("p2", phase="Succeeded")], [worker("p1")], 0, ["p2"], [], id="finished-cleared"),
    pytest.param(1, [pod("p1"), pod("p2", phase="Pending", ip=None)], [worker("p1")], 0, ["p2"], [],
                 id="never-joined-first"),
    pytest.param(1, [pod("p1"), pod("p2", phase="Pending", ip=None), pod("p3", phase="Pending", ip=None,
                                                                         unschedulable=True)],
                 [worker("p1")], 0, ["p3", "p2"], [], id="unschedulable-before-pending"),
    pytest.param(1, [pod("p1"), pod("p2"), pod("p3")], [worker("p1", stored=10), worker("p2", busy=1),
                                                        worker("p3")],
                 0, [], ["p3", "p1"], id="retire-idle-then-least-data"),
    pytest.param(0, [pod("p1"), pod("p2")], [worker("p1"), worker("p2")], 0, [], ["p1", "p2"], id="to-zero"),
])
def test_plan(desired: int, pods: list[PodView], workers: list[WorkerView], create: int, delete: list[str],
              retire: list[str]) -> None:
    plan = plan_worker_group(desired, pods, workers)
    assert (plan.create, plan.delete, sorted(plan.retire)) == (create, delete, sorted(retire))
    live = [p for p in pods if not p.deleting and p.phase not in ("Succeeded", "Failed")]
    gone = set(plan.delete) | set(plan.retire)
    assert len([p for p in live if p.name not in gone]) + plan.create == desired  # converges exactly


def test_retire_order_prefers_idle_then_empty_then_newest() -> None:
    pods = [pod("p1", created="2026-01-01T00:00:01Z"), pod("p2", created="2026-01-01T00:00:02Z"),
            pod("p3", created="2026-01-01T00:00:03Z")]
    workers = [worker("p1"), worker("p2"), worker("p3", busy=2)]
    assert plan_worker_group(2, pods, workers).retire == ["p2"]  # p3 is busy; p2 is newer than p1


def test_without_the_scheduler_only_pods_that_never_started_go() -> None:
    pods = [pod("p1"), pod("p2"), pod("p3", phase="Pending", ip=None)]
    plan = plan_worker_group(1, pods, None)
    assert plan.delete == ["p3"] and plan.retire == [] and plan.waiting
    assert plan_worker_group(4, pods, None).create == 1  # scaling up needs no scheduler


def test_workers_are_matched_by_name_or_by_pod_ip() -> None:
    pods = [pod("p1", ip="127.9.0.1"), pod("p2", ip="127.9.0.2")]
    workers = [worker("p1"), worker("tcp://127.9.0.2:40000", host="127.9.0.2")]
    assert set(joined(pods, workers)) == {"p1", "p2"}
    plan = plan_worker_group(1, pods, workers)
    assert plan.delete == [] and len(plan.retire) == 1  # both joined: one is retired, none deleted blindly


def test_identity_metrics() -> None:
    info = {"name": "w", "host": "127.1.1.1", "metrics": {"executing": 1, "ready": 2, "managed_bytes": 5,
                                                           "memory": 10**9}}
    assert WorkerView.from_identity(info) == WorkerView("w", "127.1.1.1", busy=3, stored=5)


@pytest.mark.parametrize("group,desired,live,cap,expected", [
    pytest.param("a", {"a": 3}, {"a": 1}, 5, 3, id="under-cap"),
    pytest.param("a", {"a": 10**9}, {}, 5, 5, id="one-greedy-group"),
    pytest.param("a", {"a": 10**9, "b": 10**9}, {"a": 0, "b": 0}, 5, 5, id="first-by-name-takes-it"),
    pytest.param("b", {"a": 10**9, "b": 10**9}, {"a": 5, "b": 0}, 5, 0, id="second-gets-the-rest"),
    pytest.param("a", {"a": 10**9, "b": 2}, {"a": 0, "b": 5}, 5, 0, id="never-into-occupied-room"),
    pytest.param("b", {"a": 2, "b": 10**9}, {"a": 2, "b": 0}, 5, 3, id="rest-after-a-small-group"),
])
def test_capped_replicas(group: str, desired: dict[str, int], live: dict[str, int], cap: int,
                         expected: int) -> None:
    assert capped_replicas(group, desired, live, cap) == expected


def test_capped_replicas_settles_two_greedy_groups_within_the_cap() -> None:
    desired, live, cap = {"a": 10**9, "b": 10**9}, {"a": 0, "b": 0}, 5
    for _ in range(4):  # alternate passes: counts converge and the total never exceeds the cap
        for group in ("a", "b"):
            live[group] = capped_replicas(group, desired, live, cap)
            assert sum(live.values()) <= cap
    assert live == {"a": 5, "b": 0}


def test_overdue_workers_are_those_connected_past_their_pods_grace_period() -> None:
    now = "2026-01-01T00:01:00Z"
    pods = [pod("p1", deleting=True, gone_at="2026-01-01T00:00:59Z"),  # past its grace: its kubelet is silent
            pod("p2", deleting=True, gone_at="2026-01-01T00:01:30Z"),  # still in its grace period
            pod("p3", deleting=True, gone_at="2026-01-01T00:00:10Z"),  # past, but its worker already left
            pod("p4")]  # not deleting
    assert overdue_workers(pods, [worker("p1"), worker("p2"), worker("p4")], now) == ["p1"]
    assert overdue_workers(pods, [], now) == []


def test_podless_workers_are_the_groups_connected_workers_without_any_pod() -> None:
    mine, also_mine, terminating = (naming.worker_pod_name("c-default") for _ in range(3))
    other = naming.worker_pod_name("c-default-gpu")
    workers = [worker(mine), worker(also_mine), worker(other), worker(terminating),
               worker("laptop"),  # a worker someone started by hand: not the group's, left alone
               worker("c-default-worker-XYZ")]  # not a name the operator makes
    pods = {also_mine, terminating}  # every worker pod of the cluster, terminating ones included
    assert podless_workers("c-default", pods, workers) == [mine]
    assert podless_workers("c-default-gpu", pods, workers) == [other]  # a prefix of another group is not mixed in
    assert podless_workers("c-default", pods | {mine}, workers) == []


def test_worker_pod_names_are_recognised_exactly() -> None:
    name = naming.worker_pod_name("g")
    assert naming.is_worker_pod_name("g", name)
    assert not naming.is_worker_pod_name("g", name + "0")
    assert not naming.is_worker_pod_name("g-x", name)
    assert not naming.is_worker_pod_name("g", "g-worker-" + "g" * 10)
    assert not naming.is_worker_pod_name("g", naming.worker_pod_name("g-worker-0123456789"))


def test_seconds_overdue() -> None:
    assert status.seconds_between("2026-11-22T04:00:00Z", "2026-11-22T04:00:20Z") == 20
    assert status.seconds_between("2026-11-22T04:00:30Z", "2026-11-22T04:00:20Z") == -10
