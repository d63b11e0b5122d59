"""The dask_kube side: our `KubeCluster` and our scheduler port-forward, run in .venv (see runner.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from runner import Adapter, main


def load() -> None:
    from dask_kube import KubeCluster  # noqa: F401


def make_cluster(name: str, namespace: str, n_workers: int, image: str, worker_command: list[str],
                 extra: dict[str, Any]) -> Any:
    from dask_kube import KubeCluster

    return KubeCluster(name=name, namespace=namespace, n_workers=n_workers, image=image,
                       worker_command=worker_command, quiet=True, **extra)


def forward(namespace: str, cluster: str, port: int) -> int:
    """The forward our client opens to a scheduler it cannot reach directly, on its own loop thread."""
    import kr8s.asyncio

    from dask_kube.port_forward import SchedulerForward

    started: list[int] = []
    ready = threading.Event()

    async def serve() -> None:
        api = await kr8s.asyncio.api()
        fwd = SchedulerForward(api, namespace, cluster, port)
        started.append(await fwd.start())
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=asyncio.run, args=(serve(),), daemon=True).start()
    ready.wait(60)
    return started[0]


if __name__ == "__main__":
    main(Adapter(load=load, make_cluster=make_cluster, forward=forward))
