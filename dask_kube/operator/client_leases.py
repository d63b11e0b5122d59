"""Whether the clients of a leased DaskCluster are gone. Pure, and on the operator's own clock.

A `KubeCluster` that creates a cluster it will delete on close annotates it with its lease timeout and renews the
cluster's Lease from its event loop (`cluster/lease.py`). A client that dies without closing (SIGKILL, an
OOM-killed kernel, a closed laptop) runs no atexit hook; its cluster would otherwise run until someone noticed.

Renewal times are compared with each other, never with the operator's clock: the operator notes when it first saw
each `renewTime`, so a client whose clock is wrong is never reaped early (as Kubernetes' own leader election does).
A restarted operator starts counting again. An annotated cluster whose Lease does not exist yet (its client died
between the two creates) counts from when the operator first saw it without one. A cluster's loop runs on every
event of its pods, so the Lease is read only when due (`due`), never on every pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .. import naming, status

Obj = Mapping[str, Any]
# Look at a leased cluster's Lease this many times per timeout: a dead client's cluster goes at most a third of a
# timeout late (the operator may first see the last renewal that much after it happened).
CHECKS_PER_TIMEOUT = 3


@dataclass(frozen=True)
class Seen:
    """The Lease's `renewTime` last seen (None: no Lease of this cluster); time.monotonic() when it was first seen,
    and when the Lease was last read."""

    renewed: str | None
    since: float
    looked: float


@dataclass(frozen=True)
class Verdict:
    seen: Seen | None  # what the loop remembers (None: the cluster is not leased)
    expired: str | None = None  # why the cluster is to be deleted now, as the Event says it
    recheck: float | None = None  # seconds until the Lease should be looked at again


def due(seen: Seen | None, seconds: int, now: float) -> bool:
    """Read the Lease on this pass? When never read, a third of the timeout after the last read, and always once
    the timeout may have passed: a cluster is deleted only on a fresh read."""
    return seen is None or now - seen.looked >= seconds / CHECKS_PER_TIMEOUT or now - seen.since >= seconds


def check(cluster: Obj, lease: Obj | None, seen: Seen | None, now: float, read: bool = True) -> Verdict:
    """Has nobody renewed the cluster's Lease for its timeout? `now` is monotonic; `read`: whether `lease` was
    read on this pass (see `due`), else the last reading stands."""
    seconds = status.client_lease_seconds(cluster)
    if seconds is None:
        return Verdict(None)
    if not read and seen is not None:
        next_read = min(seen.looked + seconds / CHECKS_PER_TIMEOUT, seen.since + seconds)
        return Verdict(seen, recheck=max(1.0, next_read - now))
    ours = lease is not None and status.owned_by(lease, cluster["metadata"]["uid"])
    renewed = ((lease or {}).get("spec") or {}).get("renewTime") if ours else None
    seen = Seen(renewed, now, now) if seen is None or seen.renewed != renewed else replace(seen, looked=now)
    quiet = now - seen.since
    if quiet >= seconds:
        name = naming.client_lease_name(cluster["metadata"]["name"])
        what = f"renewed Lease {name}" if renewed else f"created Lease {name}"
        return Verdict(seen, f"no client has {what} for {quiet:.0f}s (client lease timeout {seconds}s): "
                             "its client is gone; deleting the cluster")
    return Verdict(seen, recheck=max(1.0, min(seconds - quiet, seconds / CHECKS_PER_TIMEOUT)))
