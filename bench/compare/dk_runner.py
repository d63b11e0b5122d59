"""The dask-kubernetes side: its `KubeCluster` and its port-forward, run in .venv-bench-dk (see runner.py).

Never imports dask_kube: that environment has only dask-kubernetes and its dependencies.
"""

from __future__ import annotations

import asyncio
from typing import Any

from runner import Adapter, main


def load() -> None:
    from dask_kubernetes.operator import KubeCluster  # noqa: F401


def make_cluster(name: str, namespace: str, n_workers: int, image: str, worker_command: list[str],
                 extra: dict[str, Any]) -> Any:
    from dask_kubernetes.operator import KubeCluster

    return KubeCluster(name=name, namespace=namespace, n_workers=n_workers, image=image,
                       worker_command=worker_command, quiet=True, **extra)


def forward(namespace: str, cluster: str, port: int) -> int:
    from dask_kubernetes.operator.networking import port_forward_service

    # What its client does for a ClusterIP scheduler seen from outside the cluster: a forward of the Service.
    return asyncio.run(port_forward_service(f"{cluster}-scheduler", namespace, port))


if __name__ == "__main__":
    main(Adapter(load=load, make_cluster=make_cluster, forward=forward))
