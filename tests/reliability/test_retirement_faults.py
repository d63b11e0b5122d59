"""The operator SIGKILLed while it retires data-holding workers in a scale-down (real Dask processes).

Scale-down retires workers through the scheduler (which moves their data to the workers that stay) and only then
deletes their pods. Each round puts data on every one of 6 workers, some scattered (no lineage: if it is lost it
is gone) and some computed by tasks that count their executions in a file (so a recomputation would show), then
scales 6 -> 2 and SIGKILLs the operator at a seeded random point after the retirement began; pod deletes are
slowed, so the kill can also land between the retirement and the deletion of the retired workers' pods. After a
restart the group must converge to exactly 2 of the original pods with every held key still in memory on them.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, wait
from kr8s.objects import Pod
from localkube.testing import free_port

from tests.reliability import (
    Kubectl,
    apply,
    cluster_body,
    exactly,
    log_since,
    orphans,
    record,
    running,
    tracebacks,
    until,
    worker_pods,
)

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]

UP, DOWN, ROUNDS = 6, 2, 3
# Scattered onto each worker per round: BLOBS of 1 MiB (KEPT of them held to the end, the rest released after the
# round) and SMALL keys of 4 KiB.
BLOBS, KEPT, BLOB_BYTES, SMALL, SMALL_BYTES = 6, 2, 1 << 20, 200, 4 << 10
COMPUTED = 12  # computed results per round
KILL_WINDOW = 4.0  # seconds after the retirement began


def _count_and_square(i: int, path: str) -> int:
    with open(path, "a") as fh:  # pod processes are local processes: one file counts every execution
        fh.write(f"{i}\n")
    return i * i


def _scheduler_view(client: Client) -> dict[str, str]:
    """Worker name -> status, as the scheduler has it (retiring workers show `closing_gracefully`)."""
    def view(dask_scheduler: Any) -> dict[str, str]:
        return {str(ws.name): ws.status.name for ws in dask_scheduler.workers.values()}
    return client.run_on_scheduler(view)  # type: ignore[no-any-return]


def _in_memory(client: Client, keys: list[str]) -> list[str]:
    """The keys the scheduler does not have in memory on some worker."""
    def missing(dask_scheduler: Any, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in dask_scheduler.tasks or dask_scheduler.tasks[k].state != "memory"
                or not dask_scheduler.tasks[k].who_has]
    return client.run_on_scheduler(missing, keys=keys)  # type: ignore[no-any-return]


def _events(kubectl: Kubectl, *reasons: str) -> list[dict[str, Any]]:
    return [e for reason in reasons for e in json.loads(kubectl(
        "get", "events", "--field-selector", f"reason={reason}", "-o", "json").stdout)["items"]]


def _retiring(view: dict[str, str], before: set[str]) -> bool:
    """The scheduler has begun retiring: a worker is closing gracefully, or already gone."""
    return set(view) != before or any(status != "running" for status in view.values())


def _phase(pods: list[dict[str, Any]], view: dict[str, str], before: set[str]) -> tuple[int, int, int]:
    """Where a kill landed: workers retiring, workers the scheduler has removed, their pods being deleted."""
    deleting = sum(bool(p["metadata"].get("deletionTimestamp")) for p in pods if p["metadata"]["name"] in before)
    retiring = sum(s != "running" for s in view.values())
    return retiring, len(before - set(view)), deleting


def _describe(phase: tuple[int, int, int]) -> str:
    return "{} retiring, {} removed by the scheduler, {} pods deleting".format(*phase)


def test_operator_sigkilled_during_a_data_holding_scale_down(kubectl: Kubectl, operator: Any, namespace: str,
                                                             local_kube: Any, tmp_path: Path) -> None:
    rng = random.Random(20_261_122)
    started = time.monotonic()
    offset = operator.log_path.stat().st_size
    counter = tmp_path / "executions"
    counter.touch()
    apply(kubectl, cluster_body("keeper", UP, simulate_workers=False))
    running(kubectl, "keeper", ready=UP, timeout=150)
    held: dict[str, tuple[Any, Any]] = {}  # key -> (future, expected value)
    computed = moved = 0
    phases: list[tuple[int, int, int]] = []
    forward = Pod.get("keeper-scheduler", namespace=namespace).portforward(8786, local_port=free_port())
    with forward as port, Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        for round_ in range(ROUNDS):
            client.wait_for_workers(UP, timeout=90)
            before = set(exactly(kubectl, "keeper", UP, timeout=90, hold=0))
            until(lambda before=before: set(_scheduler_view(client)) == before, "the scheduler to see the 6 pods", 60)
            bulk: dict[str, tuple[Any, Any]] = {}  # this round's bulk: makes the retirement take a while
            for address in client.scheduler_info()["workers"]:
                # Many keys make the scheduler check the retirement's progress less often (up to every 0.5 s).
                blobs = [rng.randbytes(BLOB_BYTES) for _ in range(BLOBS)] + [
                    rng.randbytes(SMALL_BYTES) for _ in range(SMALL)]
                for n, (future, blob) in enumerate(zip(client.scatter(blobs, workers=[address], hash=False), blobs,
                                                       strict=True)):
                    (held if n < KEPT else bulk)[future.key] = (future, blob)
            futures = client.map(_count_and_square, range(computed, computed + COMPUTED), path=str(counter),
                                 pure=False)
            wait(futures, timeout=60)
            held.update({f.key: (f, i * i) for f, i in zip(futures, range(computed, computed + COMPUTED),
                                                            strict=True)})
            computed += COMPUTED
            slow = local_kube.call(local_kube.kube.fail_requests, rf"/namespaces/{namespace}/pods/[^/?]+$",
                                   status=None, count=10**6, method="DELETE", delay=1.0, user_agent="kr8s")
            try:
                kubectl("scale", "daskcluster", "keeper", f"--replicas={DOWN}")
                until(lambda before=before: _retiring(_scheduler_view(client), before), "the retirement to begin", 30,
                      every=0.02)
                time.sleep(rng.uniform(0.0, KILL_WINDOW))  # the seeded random kill point, not a wait for a condition
                operator.kill()
                phases.append(_phase(worker_pods(kubectl, "keeper", include_deleting=True),
                                     _scheduler_view(client), before))
            finally:
                local_kube.call(setattr, slow, "count", 0)
            operator.start()
            after = exactly(kubectl, "keeper", DOWN, timeout=90)
            assert set(after) <= before, f"pods were replaced during a scale-down: {before} -> {after}"
            until(lambda after=after: sorted(_scheduler_view(client)) == sorted(after),
                  "the scheduler to have exactly the remaining pods' workers", 60,
                  explain=lambda: str(_scheduler_view(client)))
            # No data lost: every held key is in memory on a remaining worker, with its value.
            assert _in_memory(client, [*held, *bulk]) == []
            holders = {w for ws in client.who_has([f for f, _ in [*held.values(), *bulk.values()]]).values()
                       for w in ws}
            names = {info["name"] for addr, info in client.scheduler_info()["workers"].items() if addr in holders}
            assert names <= set(after), names
            checked = [*held.values(), *(v for v in bulk.values() if len(v[1]) == BLOB_BYTES)]
            assert client.gather([f for f, _ in checked]) == [v for _, v in checked], "a held value changed"
            moved += len(bulk)
            del bulk, checked  # release the bulk: the workers that stay must not fill up over the rounds
            # The operator says what became of each of the 4 pods: retired by it, or found already retired.
            said = " ".join(e["message"] for e in _events(kubectl, "WorkersRetired", "ScaledDown"))
            assert all(n in said for n in before - set(after)), said
            executions = counter.read_text().split()
            assert len(executions) == computed, f"{len(executions) - computed} tasks were recomputed"
            if round_ < ROUNDS - 1:
                kubectl("scale", "daskcluster", "keeper", f"--replicas={UP}")
    retired = _events(kubectl, "WorkersRetired")
    found = _events(kubectl, "ScaledDown")
    # The kills landed in the retirement: workers still retiring, or retired with their pods not all deleted yet.
    assert all(retiring or deleting < UP - DOWN for retiring, _, deleting in phases), phases
    running(kubectl, "keeper", ready=DOWN, timeout=30)
    assert orphans(kubectl) == []
    assert operator.proc.poll() is None
    failed = tracebacks(log_since(operator.log_path, offset))
    record("test_operator_sigkilled_during_a_data_holding_scale_down", "operator",
           injected=f"operator SIGKILLed once in each of {ROUNDS} scale-downs {UP}->{DOWN} of real workers holding "
                    f"data (per round and worker {BLOBS} scattered 1 MiB blobs, {KEPT} of them held to the end, and "
                    f"{SMALL} of 4 KiB; {COMPUTED} computed results), at seeded random points 0-{KILL_WINDOW} s "
                    "after the retirement began, pod deletes slowed 1 s; at the kills: "
                    + "; ".join(map(_describe, phases)),
           survived=f"converged each time to exactly {DOWN} of the original pods, the scheduler with exactly their "
                    f"workers; all {len(held)} held keys and each round's {moved // ROUNDS} bulk keys in memory with "
                    "correct values, none recomputed "
                    f"({computed} executions for {computed} tasks); no orphans",
           seconds=time.monotonic() - started, reconcile_failures_logged=len(failed),
           retired_by_the_operator=len(retired), found_retired_after_a_restart=len(found))
