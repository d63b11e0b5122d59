"""The versions of a cluster compared with the client's, once on connect, in words that say how to fix them.

distributed compares the same packages when a `Client` connects, and warns with a table; it cannot say what to do
about it on Kubernetes. Here the comparison names each package that differs with the client's, the scheduler's
and the workers' versions, and the two fixes: the image tagged for this client, or the cluster's versions
installed here. Pure but for `check`, which asks the scheduler.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distributed import versions as distributed_versions

from .. import images

MISSING = "missing"


@dataclass(frozen=True)
class Difference:
    package: str
    client: str
    scheduler: str | None  # None: the scheduler's version does not matter for this package
    workers: tuple[str, ...]

    def __str__(self) -> str:
        parts = [f"client {self.client}"]
        if self.scheduler is not None:
            parts.append(f"scheduler {self.scheduler}")
        if self.workers:
            parts.append(f"workers {', '.join(self.workers)}")
        return f"{self.package}: {'; '.join(parts)}"


def _packages(info: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (info or {}).get("packages") or {}


def differences(client: Mapping[str, Any], scheduler: Mapping[str, Any] | None,
                workers: Mapping[str, Mapping[str, Any] | None]) -> list[Difference]:
    """The packages whose versions differ, by distributed's own rules (which packages count for the scheduler)."""
    mine, theirs = _packages(client), _packages(scheduler)
    names = set(mine) | set(theirs)
    for info in workers.values():
        names |= set(_packages(info))
    found = []
    for package in sorted(names):
        client_version = str(mine.get(package) or MISSING)
        scheduler_version = (str(theirs.get(package) or MISSING)
                             if package in distributed_versions.scheduler_relevant_packages else None)
        worker_versions = tuple(sorted({str(_packages(info).get(package) or MISSING) for info in workers.values()}))
        seen = {client_version, *worker_versions} | ({scheduler_version} if scheduler_version else set())
        if len(seen) > 1:
            found.append(Difference(package, client_version, scheduler_version, worker_versions))
    return found


def message(cluster: str, found: list[Difference], image: str, scheduler: Mapping[str, Any] | None) -> str:
    """What differs, and the two ways out."""
    theirs = _packages(scheduler)
    pins = " ".join(f"{d.package}=={theirs[d.package]}" for d in found
                    if d.package != "python" and theirs.get(d.package) and d.scheduler not in (None, MISSING))
    lines = [f"Versions differ between this client and cluster {cluster}:",
             *(f"  {d}" for d in found),
             f"Fix: run the cluster with the image made for this client, {image} (the default when no image is "
             "named: unset `image=` and dask config kubernetes.image)"]
    if pins:
        lines.append(f"  or install the cluster's versions here: pip install {pins}")
    return "\n".join(lines)


async def check(scheduler_comm: Any, cluster: str) -> list[Difference]:
    """Ask the scheduler for its and its workers' versions; warn once if they differ from the client's, raise
    where distributed itself would refuse the connection. The differences found."""
    client = distributed_versions.get_versions()
    scheduler = await scheduler_comm.versions(packages=[])
    workers = await scheduler_comm.broadcast(msg={"op": "versions", "packages": []}, on_error="ignore")
    own = distributed_versions.error_message(scheduler, workers, client)
    found = differences(client, scheduler, workers)
    text = message(cluster, found, images.for_this_client(), scheduler) if found else ""
    if own.get("error"):
        raise ImportError(f"{own['error']}\n{text}".strip())
    if found:
        warnings.warn(distributed_versions.VersionMismatchWarning(text), stacklevel=2)
    return found
