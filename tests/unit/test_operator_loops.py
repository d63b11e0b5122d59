"""The reconcile loop's timing: quiet resyncs back off to the cap, events and work in flight reset them."""

from __future__ import annotations

import asyncio
import itertools
import logging

import httpx
import kr8s
import pytest
from localkube.testing import async_until

from dask_kube.kubernetes_api import denied_message, outage_message
from dask_kube.operator.loops import Gone, Loops

KEY = ("daskclusters", "ns", "c")


async def test_quiet_resyncs_double_up_to_the_cap_and_an_event_resets_them() -> None:
    loops = Loops(resync_seconds=0.01, resync_max_seconds=0.08)
    passes: list[float] = []
    answer: list[float | None] = [None]

    async def reconcile() -> float | None:
        passes.append(asyncio.get_running_loop().time())
        return answer[0]

    task = asyncio.create_task(loops.run(KEY, reconcile))
    try:
        seen: list[float] = []

        def capped() -> bool:
            wait = loops.waits.get(KEY)
            if wait is not None and (not seen or seen[-1] != wait):
                seen.append(wait)
            return wait == 0.08

        await async_until(capped, "the resync to reach its cap", within=10, interval=0.001)
        # Polling may miss a step, never reorder them: only doublings of the base, rising to the cap.
        assert seen == sorted(seen) and set(seen) <= {0.01, 0.02, 0.04, 0.08}, seen
        # Timeouts never fire early: each quiet gap is at least the wait chosen before it.
        gaps = [b - a for a, b in itertools.pairwise(passes)]
        assert all(gap >= 0.009 for gap in gaps), gaps

        loops.wake(KEY)  # an event: back to the base period
        await async_until(lambda: loops.waits.get(KEY) == 0.01, "the resync to reset after an event", within=10,
                          interval=0.001)

        answer[0] = 0.5  # work in flight asks for its own time: used as is, never stretched
        loops.wake(KEY)
        await async_until(lambda: loops.waits.get(KEY) == 0.5, "the pass's own delay", within=10, interval=0.001)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert KEY not in loops.waits and loops.running() == 0


def test_the_cap_is_never_below_the_base_period() -> None:
    assert Loops(resync_seconds=10, resync_max_seconds=5).resync_max == 10
    assert Loops(resync_seconds=10).resync_max == 10


async def test_a_failure_is_reported_once_per_message_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dask_kube.operator.loops")
    reports: list[str] = []
    errors = iter(["no permission", "no permission", "no permission", "another", "another"])

    async def report(key: tuple[str, str, str], err: Exception) -> str | None:
        assert key == KEY
        reports.append(str(err))
        return f"explained: {err}"

    passes = 0

    async def reconcile() -> float | None:
        nonlocal passes
        passes += 1
        message = next(errors, None)
        if message is not None:
            raise RuntimeError(message)
        return None

    loops = Loops(resync_seconds=0.01, report=report)
    task = asyncio.create_task(loops.run(KEY, reconcile))
    try:
        # The fourth failure has a new message; after the fifth the pass succeeds and the loop rests.
        await async_until(lambda: passes >= 6, "the loop to recover", within=30, interval=0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reports == ["no permission", "another"]
    # Explained failures are one line each, never a traceback; repeats are quieter than the first.
    failures = [r for r in caplog.records if r.name == "dask_kube.operator.loops"]
    assert not [r for r in failures if r.exc_info]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.INFO, logging.INFO, logging.WARNING,
                                             logging.INFO]
    assert "explained: no permission" in failures[0].getMessage()


async def test_an_unexplained_failure_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    errors = iter([ValueError("a bug")])

    async def report(key: tuple[str, str, str], err: Exception) -> str | None:
        return None

    async def reconcile() -> float | None:
        error = next(errors, None)
        if error is not None:
            raise error
        return None

    loops = Loops(resync_seconds=0.01, report=report)
    task = asyncio.create_task(loops.run(KEY, reconcile))
    try:
        await async_until(lambda: loops.waits.get(KEY) == 0.01, "the loop to recover", within=30, interval=0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [failure] = [r for r in caplog.records if r.name == "dask_kube.operator.loops"]
    assert failure.exc_info is not None and failure.exc_info[0] is ValueError


def test_an_api_server_that_does_not_answer_is_an_outage_not_a_bug() -> None:
    request = httpx.Request("GET", "https://k/api/v1/namespaces/a/pods")
    assert "did not answer in time (ReadTimeout)" in str(outage_message(httpx.ReadTimeout("", request=request)))
    assert "did not answer in time" in str(outage_message(kr8s.APITimeoutError("Timeout while waiting")))
    assert "could not be reached (ConnectError" in str(outage_message(httpx.ConnectError("refused")))
    for status in (429, 500, 503):
        busy = kr8s.ServerError("try later", response=httpx.Response(status, request=request))
        assert f"answered {status}" in str(outage_message(busy))
    assert outage_message(ExceptionGroup("forward", [httpx.ConnectError("refused")])) is not None
    conflict = kr8s.ServerError("exists", response=httpx.Response(409, request=request))
    assert outage_message(conflict) is None
    assert outage_message(ValueError("a bug")) is None


def test_a_403_is_recognised_as_a_missing_permission() -> None:
    text = 'pods is forbidden: User "system:serviceaccount:a:b" cannot create resource "pods" in API group ""'
    request = httpx.Request("POST", "https://k/api/v1/namespaces/a/pods")
    forbidden = kr8s.ServerError(text, response=httpx.Response(403, request=request))
    assert denied_message(forbidden) == text
    conflict = kr8s.ServerError("exists", response=httpx.Response(409, request=request))
    assert denied_message(conflict) is None
    assert denied_message(RuntimeError(text)) is None


async def test_a_loop_ends_when_its_object_is_gone_and_keeps_nothing() -> None:
    loops = Loops(resync_seconds=0.01)
    passes = 0

    async def reconcile() -> float | None:
        nonlocal passes
        passes += 1
        if passes == 3:
            raise Gone()
        return None

    await asyncio.wait_for(loops.run(KEY, reconcile), 10)  # returns by itself: no cancellation needed
    assert passes == 3 and loops.running() == 0 and loops.held() == {}


async def test_a_write_that_lost_a_race_is_decided_again_soon_and_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """A 409 (a write conditional on a resourceVersion, like an autoscaler's claim on its group) is retried
    within tens of milliseconds, not after the seconds of backoff a failure gets, and without a traceback."""
    caplog.set_level(logging.DEBUG, logger="dask_kube.operator.loops")
    request = httpx.Request("PATCH", "https://k/apis/kubernetes.dask.org/v1/namespaces/a/daskworkergroups/g")
    loops = Loops(resync_seconds=30)
    passes = 0
    settled = asyncio.Event()

    async def reconcile() -> float | None:
        nonlocal passes
        passes += 1
        if passes <= 2:
            raise kr8s.ServerError("the object has been modified", response=httpx.Response(409, request=request))
        settled.set()
        return None

    task = asyncio.create_task(loops.run(KEY, reconcile))
    try:
        await asyncio.wait_for(settled.wait(), 2)  # a failure's backoff alone would be 1 s, then 2 s
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    records = [r for r in caplog.records if r.name == "dask_kube.operator.loops"]
    assert passes == 3 and records and all(r.levelno == logging.DEBUG and r.exc_info is None for r in records)
