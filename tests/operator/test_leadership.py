"""The Lease protocol itself, between replicas in one process against the API server: one wins a race, a standby
waits out the lease duration of a silent leader, a leader that sees another holder stops, a release is taken up
at once, and a leader whose renewals fail stops its operator before anyone else may lead."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from dask_kube import kubernetes_api
from dask_kube.operator import leadership
from dask_kube.operator.leadership import LeaderElection, claim, micro_time
from dask_kube.operator.settings import LeaderElectionSettings

FAST = LeaderElectionSettings(enabled=True, lease_name="unit", lease_duration_seconds=2, renew_deadline_seconds=1.5,
                              retry_period_seconds=0.2)


def test_claim_counts_transitions_and_keeps_the_acquire_time_of_a_renewal() -> None:
    t0, t1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    first = claim(None, "a", 10, t0)
    assert first == {"holderIdentity": "a", "leaseDurationSeconds": 10, "acquireTime": micro_time(t0),
                     "renewTime": micro_time(t0), "leaseTransitions": 0}
    renewed = claim(first, "a", 10, t1)
    assert renewed["acquireTime"] == micro_time(t0) and renewed["renewTime"] == micro_time(t1)
    assert renewed["leaseTransitions"] == 0
    taken = claim(renewed, "b", 10, t1)
    assert taken["acquireTime"] == micro_time(t1) and taken["leaseTransitions"] == 1
    assert micro_time(t1) == "2026-01-01T00:00:05.000000Z"


def test_settings_refuse_a_deadline_that_is_not_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="renew-deadline-seconds"):
        LeaderElectionSettings(lease_duration_seconds=10, renew_deadline_seconds=10)


async def test_one_leader_at_a_time(kube, namespace) -> None:  # type: ignore[no-untyped-def]
    async with kubernetes_api.private_client(str(kube.kubeconfig)) as api:
        a, b, c = (LeaderElection(api, FAST, namespace, identity=name) for name in "abc")
        wins = await asyncio.gather(*(e.try_acquire_or_renew(within=5) for e in (a, b, c)))
        assert sorted(wins) == [False, False, True]  # three racing for a missing Lease: one creates it
        leader = (a, b, c)[wins.index(True)]
        standby = next(e for e in (a, b, c) if e is not leader)

        async def lease() -> dict[str, Any]:
            async with api.call_api("GET", version="coordination.k8s.io/v1", url="leases/unit",
                                    namespace=namespace) as resp:
                return resp.json()["spec"]  # type: ignore[no-any-return]

        # The leader renews; a standby never takes over while it does. The standby tries as a replica does, every
        # retry period, until it has watched for longer than a lease and seen the leader renew at least 3 times:
        # a silent leader would have lost the Lease to it by then.
        keeping = asyncio.create_task(leader.keep())
        watching, renewals = time.monotonic(), {(await lease())["renewTime"]}
        while len(renewals) < 4 or time.monotonic() - watching < 1.5 * FAST.lease_duration_seconds:
            assert not await standby.try_acquire_or_renew(within=5)
            renewals.add((await lease())["renewTime"])
            assert time.monotonic() - watching < 30, f"the leader renewed only {len(renewals) - 1} times in 30 s"
            await asyncio.sleep(FAST.retry_period_seconds)
        keeping.cancel()

        # Silent from now on: the standby takes over once it has seen no renewal for the lease duration.
        silent = time.monotonic()
        await asyncio.wait_for(standby.acquire(), timeout=10)
        assert time.monotonic() - silent >= FAST.lease_duration_seconds - FAST.retry_period_seconds
        # The old leader, resuming, sees another holder and stops at its next renewal.
        await asyncio.wait_for(leader.keep(), timeout=5)

        # A clean stop hands the Lease back: the next replica takes it at its first try.
        await standby.release()
        assert await leader.try_acquire_or_renew(within=5)
        spec = await lease()
        assert spec["holderIdentity"] == leader.identity and spec["leaseTransitions"] == 2


@pytest.mark.localkube_only
async def test_a_leader_that_cannot_renew_stops_its_operator_before_the_lease_lapses(  # type: ignore[no-untyped-def]
        kube, namespace, local_kube) -> None:
    settings = LeaderElectionSettings(enabled=True, lease_name="lost", namespace=namespace, lease_duration_seconds=3,
                                      renew_deadline_seconds=1.5, retry_period_seconds=0.25)
    leading = asyncio.Event()
    stopped: list[float] = []

    async def operator() -> None:  # stands in for kopf: runs until cancelled
        leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append(time.monotonic())

    task = asyncio.create_task(leadership.run(settings, None, operator, kubeconfig=str(kube.kubeconfig)))
    fault = None
    try:
        await asyncio.wait_for(leading.wait(), timeout=10)
        # From now on every write of the Lease fails, as when the API server is unreachable for this replica.
        fault = local_kube.call(local_kube.kube.fail_requests, f"/namespaces/{namespace}/leases/lost", status=503,
                                count=1000, method="PUT", user_agent="kr8s")
        cut = time.monotonic()
        assert await asyncio.wait_for(task, timeout=10) == leadership.EXIT_LOST
        # Stopped within the renew deadline (plus one retry period): before a standby could take the Lease over.
        assert stopped and stopped[0] - cut < settings.lease_duration_seconds
    finally:
        if fault is not None:
            local_kube.call(setattr, fault, "count", 0)
        task.cancel()
