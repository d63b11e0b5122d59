"""Quickstart: a Dask cluster on Kubernetes from Python.

Run it against any cluster where the dask_kube operator is installed (`KUBECONFIG` says which), or through
`make demo`, which starts a local one first. Needs numpy for the dask array.
"""

from __future__ import annotations

import dask.array as da
from distributed import Client

from dask_kube import KubeCluster


def main() -> None:
    with KubeCluster(name="quickstart", n_workers=2) as cluster, Client(cluster) as client:
        cluster.wait_for_workers(2)
        x = da.random.default_rng(42).random((4000, 4000), chunks=(1000, 1000))
        print("mean of 16 million random numbers:", round(float(x.mean().compute()), 3))

        cluster.scale(3)  # declarative: returns at once; wait for the third worker explicitly
        cluster.wait_for_workers(3)
        total = (x + x.T).sum().compute()
        print("workers:", len(client.scheduler_info()["workers"]), "| sum of x + x.T:", round(float(total)))
        print("dashboard:", cluster.dashboard_link)
    print("closed: the cluster and its pods are gone")


if __name__ == "__main__":
    main()
