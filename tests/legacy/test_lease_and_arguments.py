"""No Kubernetes needed: the scheduler side of the client lease on an in-process scheduler, and argument checks
that must fail before anything is created."""

from __future__ import annotations

import asyncio

import pytest
from distributed import Scheduler
from distributed.comm import connect

from dask_kube.errors import SpecError
from dask_kube.legacy import KubeCluster, make_pod_spec, pods


async def test_scheduler_stays_while_leased_and_closes_once_the_client_is_gone() -> None:
    async with Scheduler(port=0, dashboard_address=":0", preload=[pods.lease_preload(0.5, 0.5)]) as scheduler:
        comm = await connect(scheduler.address)
        await comm.write({"op": pods.LEASE_OP, "reply": False})
        # Held: four times the orphan timeout pass and the scheduler is still running.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(scheduler.finished()), 2.0)
        assert scheduler.status.name == "running"
        await comm.close()  # what the kernel does for a killed client
        await asyncio.wait_for(scheduler.finished(), 10)
        assert scheduler.status.name == "closed"


async def test_scheduler_that_never_sees_a_client_closes_after_the_first_grace() -> None:
    async with Scheduler(port=0, dashboard_address=":0", preload=[pods.lease_preload(30, 0.5)]) as scheduler:
        await asyncio.wait_for(scheduler.finished(), 10)
        assert scheduler.status.name == "closed"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"deploy_mode": "cloud"}, "deploy_mode"),
    ({"deploy_mode": "remote", "security": object()}, "security"),
    ({"name": "Not_A_DNS_Label"}, "name"),
])
def test_bad_arguments_fail_before_anything_is_created(kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        KubeCluster.from_dict(make_pod_spec("ghcr.io/dask/dask:latest"), **kwargs)
    assert info.value.field == field


def test_a_template_is_required() -> None:
    with pytest.raises(SpecError, match="no worker Pod template"):
        KubeCluster()
    with pytest.raises(SpecError, match="Pod mapping"):
        KubeCluster.from_dict(["not", "a", "pod"])  # type: ignore[arg-type]
