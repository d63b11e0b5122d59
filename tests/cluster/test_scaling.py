"""Scaling: scale up and down, extra worker groups, the port-forward healing, and adapt (last)."""

from __future__ import annotations

import json

import dask.bag as db
import pytest
from distributed import Client
from distributed.utils import CancelledError

from dask_kube import KubeCluster

from .helpers import wait_until

pytestmark = pytest.mark.e2e


def _worker_pods(kubectl, group: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    selector = "dask.org/component=worker" + (f",dask.org/workergroup-name={group}" if group else "")
    items = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")]


def test_scale_up_down_and_worker_groups(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="scale", namespace=namespace, n_workers=1, quiet=True) as cluster, \
            Client(cluster) as client:
        cluster.wait_for_workers(1, timeout=60)
        cluster.scale(3)
        cluster.wait_for_workers(3, timeout=60)
        assert len(_worker_pods(kubectl, "scale-default")) == 3
        assert client.compute(db.from_sequence(range(1000), npartitions=10).sum()).result() == 499500

        cluster.scale(1)
        wait_until(lambda: len(client.scheduler_info()["workers"]) == 1, 60, "one worker after scale(1)")
        wait_until(lambda: len(_worker_pods(kubectl, "scale-default")) == 1, 60, "one default worker pod")

        cluster.add_worker_group("extra", n_workers=1, worker_command="dask worker --nthreads 2")
        cluster.wait_for_workers(2, timeout=60)
        assert len(_worker_pods(kubectl, "scale-extra")) == 1
        assert sorted(client.nthreads().values())[-1] == 2
        cluster.scale(2, worker_group="extra")
        cluster.wait_for_workers(3, timeout=60)
        assert len(_worker_pods(kubectl, "scale-extra")) == 2

        cluster.delete_worker_group("extra")
        wait_until(lambda: len(client.scheduler_info()["workers"]) == 1, 60, "the extra group's workers gone")
        assert client.submit(lambda: 42).result() == 42


def test_wait_for_workers_explains_a_timeout(operator, namespace) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="starved", namespace=namespace, n_workers=0, quiet=True) as cluster:
        cluster.add_worker_group("huge", n_workers=1, resources={"requests": {"cpu": "500"}})
        with pytest.raises(TimeoutError, match=r"(?s)0/1.*worker pods: 1 Pending \(Unschedulable"):
            cluster.wait_for_workers(1, timeout=3)


@pytest.mark.localkube_only
def test_port_forward_heals_after_api_server_restart(operator, namespace, kube) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="heal", namespace=namespace, n_workers=1, quiet=True) as cluster, \
            Client(cluster) as client:
        cluster.wait_for_workers(1, timeout=60)
        assert client.submit(lambda: 1).result() == 1
        address = cluster.scheduler_address
        kube.local.run(kube.local.kube.restart_api())  # cuts every websocket: the Client's comm dies with it
        # Work in flight while the Client notices the cut is cancelled (distributed's rule); the next succeeds.
        wait_until(lambda: _computes(client, 2), 60, "a computation after the API server restart")
        assert client.compute(db.from_sequence([1] * 100, npartitions=10).sum()).result(timeout=60) == 100
        assert cluster.scheduler_address == address


@pytest.mark.localkube_only
def test_port_forward_heals_after_scheduler_pod_replacement(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="phoenix", namespace=namespace, n_workers=1, quiet=True) as cluster, \
            Client(cluster) as client:
        cluster.wait_for_workers(1, timeout=60)
        first = client.scheduler_info()["id"]
        kubectl("delete", "pod", "phoenix-scheduler", "--wait=true")
        # The operator recreates the scheduler pod; the Client reconnects through a fresh forward.
        wait_until(lambda: _scheduler_id(client) not in (None, first), 60, "a new scheduler behind the forward")
        client.wait_for_workers(1, timeout=60)
        assert client.submit(lambda: 3, pure=False).result(timeout=60) == 3


def _computes(client: Client, value: int) -> bool:
    try:
        return client.submit(lambda v: v, value, pure=False).result(timeout=10) == value
    except (CancelledError, OSError, TimeoutError):
        return False


def _scheduler_id(client: Client) -> str | None:
    try:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.id)
    except OSError:
        return None


def test_adapt_grows_under_load_and_shrinks_after(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    with KubeCluster(name="adapt", namespace=namespace, n_workers=0, quiet=True) as cluster, \
            Client(cluster) as client:
        cluster.adapt(minimum=0, maximum=2)
        assert json.loads(kubectl("get", "daskautoscaler", "adapt", "-o", "json").stdout)["spec"]["maximum"] == 2
        futures = client.map(lambda i: __import__("time").sleep(0.5) or i, range(40), pure=False)
        cluster.wait_for_workers(2, timeout=60)
        assert sum(client.gather(futures)) == sum(range(40))
        del futures
        wait_until(lambda: not client.scheduler_info()["workers"], 90, "adaptive scale-down to 0")
        cluster.scale(1)  # takes over from the autoscaler, which it removes
        wait_until(lambda: kubectl("get", "daskautoscaler", "adapt", check=False).returncode != 0, 30,
                   "the autoscaler removed by scale()")
        cluster.wait_for_workers(1, timeout=60)
