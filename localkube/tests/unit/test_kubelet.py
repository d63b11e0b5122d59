"""Pure parts of the kubelet: Go duration wording, the CrashLoopBackOff schedule and probes."""

from __future__ import annotations

import asyncio

import pytest

from localkube.node.kubelet import CrashBackOff, exit_code, go_duration
from localkube.node.probes import ProbeError, Prober, resolve_port


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (20, "20s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (0.2, "200ms"), (1.6, "1.6s"),
    (3600, "1h0m0s"), (0, "0s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_crash_back_off_schedule() -> None:
    backoff = CrashBackOff(10, 300)
    now, delays = 0.0, []
    for _ in range(8):
        now += 1  # the container runs one second, then crashes
        delay = backoff.delay(now)
        delays.append(delay)
        now += delay
        backoff.restarted(now)
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]
    assert backoff.delay(now + 601) == 0, "forgotten after running twice the cap"


def test_exit_codes() -> None:
    assert exit_code(0) == 0 and exit_code(3) == 3 and exit_code(-9) == 137 and exit_code(-15) == 143


def test_named_ports() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(81, container) == 81 and resolve_port("82", container) == 82
    with pytest.raises(ProbeError):
        resolve_port("grpc", container)


async def test_prober_thresholds() -> None:
    results = iter([False, False, True, True, False, False, False])
    seen: list[bool] = []
    done = asyncio.Event()

    async def attempt() -> bool:
        try:
            return next(results)
        except StopIteration:
            done.set()
            return False

    probe = {"periodSeconds": 0.01, "successThreshold": 2, "failureThreshold": 2}
    task = asyncio.create_task(Prober(probe, attempt, seen.append).run())
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    assert seen == [False, True, False]
