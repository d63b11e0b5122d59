"""Leader election on a coordination.k8s.io/v1 Lease: of several operator replicas, only the leader reconciles.

kopf's peering pauses operators of lower priority, but elects nobody: two replicas of equal priority would both
stop. This module follows the protocol Kubernetes' own controllers use, so `kubectl get lease` reads the same:

- a replica is leader while it holds the Lease (`holderIdentity`) and renews it (`renewTime`) every
  `retry_period`; it writes only with the Lease's `resourceVersion`, so of two replicas racing, one wins;
- a standby checks every `retry_period` and takes the Lease over once it has seen no renewal for
  `lease_duration`, timed on its own clock from when it last saw the Lease change (clocks of different nodes
  never need to agree);
- a leader that could not renew for `renew_deadline` (shorter than `lease_duration`) stops reconciling and exits
  before any standby may take over, so two leaders never act at once; it exits non-zero and comes back as a standby;
- a leader that stops cleanly (SIGTERM) hands the Lease back at once, so a rolling update waits for nobody.

`run` does it around the operator: serve a liveness endpoint while standing by, run kopf once leading.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import kr8s
import kr8s.asyncio

from .. import kubernetes_api
from . import metrics
from .settings import LeaderElectionSettings, instance_name

API_VERSION = "coordination.k8s.io/v1"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
EXIT_LOST = 1  # the exit status of a leader that lost its Lease: the pod restarts, as a standby
log = logging.getLogger(__name__)
Obj = dict[str, Any]


def micro_time(when: dt.datetime) -> str:
    """A Lease's times are MicroTime: RFC 3339 with microseconds."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_namespace(configured: str | None) -> str:
    """Where the Lease lives: as configured, else the pod's own namespace (POD_NAMESPACE, or its service account's)."""
    if configured:
        return configured
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip()
    except OSError:
        raise SystemExit("dask-kube-operator: leader election needs the Lease's namespace: pass --lease-namespace "
                         "or set kubernetes.operator.leader-election.namespace (or POD_NAMESPACE)") from None


def claim(current: Obj | None, identity: str, duration: int, now: dt.datetime) -> Obj:
    """The Lease spec that makes `identity` the holder (a renewal if it is already), from the current spec."""
    current = current or {}
    ours = current.get("holderIdentity") == identity
    return {
        "holderIdentity": identity, "leaseDurationSeconds": duration,
        "acquireTime": current.get("acquireTime") if ours and current.get("acquireTime") else micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": int(current.get("leaseTransitions") or 0) + (0 if ours or not current else 1),
    }


@dataclass
class Observation:
    """The Lease spec as this replica last saw it change, and when (on this replica's monotonic clock)."""

    spec: Obj
    at: float


class LeaderElection:
    def __init__(self, api: kr8s.asyncio.Api, settings: LeaderElectionSettings, namespace: str,
                 identity: str | None = None) -> None:
        self.api = api
        self.settings = settings
        self.namespace = namespace
        self.identity = identity or f"{instance_name()}_{uuid.uuid4().hex[:8]}"
        self.observed: Observation | None = None
        self.renewed_at: float | None = None  # monotonic time of our last successful acquire or renewal

    @property
    def name(self) -> str:
        return self.settings.lease_name

    def holder(self) -> str | None:
        return (self.observed.spec.get("holderIdentity") or None) if self.observed else None

    async def try_acquire_or_renew(self, within: float) -> bool:
        """One attempt, given up after `within` seconds: True if we hold the Lease afterwards. API errors and a
        slow answer count as a failed attempt."""
        try:
            async with asyncio.timeout(within):
                return await self._attempt()
        except (kr8s.ServerError, kr8s.APITimeoutError, httpx.HTTPError, OSError) as err:  # TimeoutError included
            log.warning("leader election: the Lease %s/%s could not be read or written: %s", self.namespace,
                        self.name, kubernetes_api.outage_message(err) or f"{type(err).__name__} {err}")
            return False

    async def _attempt(self) -> bool:
        now, clock = dt.datetime.now(dt.UTC), time.monotonic()
        duration = self.settings.lease_duration_seconds
        try:
            async with self.api.call_api("GET", version=API_VERSION, url=f"leases/{self.name}",
                                         namespace=self.namespace) as resp:
                lease = resp.json()
        except kr8s.ServerError as err:
            if not kubernetes_api.is_not_found(err):
                raise
            spec = claim(None, self.identity, duration, now)
            body = {"apiVersion": API_VERSION, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            return await self._write("POST", "leases", body, spec, clock)
        spec = lease.get("spec") or {}
        if self.observed is None or self.observed.spec != spec:
            self.observed = Observation(spec, clock)
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity:
            seen_for = clock - self.observed.at
            if seen_for < int(spec.get("leaseDurationSeconds") or duration):
                return False  # held, and renewed recently as far as we can tell
            log.info("leader election: %s has not renewed %s/%s for %.1fs: taking it over", holder, self.namespace,
                     self.name, seen_for)
        new = claim(spec, self.identity, duration, now)
        body = {**lease, "spec": new}  # metadata.resourceVersion included: of two writers, one wins
        return await self._write("PUT", f"leases/{self.name}", body, new, clock)

    async def _write(self, method: str, url: str, body: Obj, spec: Obj, clock: float) -> bool:
        try:
            async with self.api.call_api(method, version=API_VERSION, url=url, namespace=self.namespace,
                                         content=json.dumps(body)):
                pass
        except kr8s.ServerError as err:
            if kubernetes_api.is_conflict(err):  # someone else wrote first (or created it first)
                return False
            raise
        if self.holder() != self.identity:
            log.warning("leader election: %s now holds the Lease %s/%s", self.identity, self.namespace, self.name)
        self.observed = Observation(spec, clock)
        self.renewed_at = clock
        return True

    def _pause(self) -> float:
        return self.settings.retry_period_seconds * random.uniform(1.0, 1.2)

    async def acquire(self) -> None:
        """Return once this replica holds the Lease."""
        log.warning("leader election: %s waits for the Lease %s/%s", self.identity, self.namespace, self.name)
        while True:
            if await self.try_acquire_or_renew(within=self.settings.lease_duration_seconds):
                return
            await asyncio.sleep(self._pause())  # the Lease has no watch worth holding: look again, as kubelets do

    async def keep(self) -> None:
        """Renew the Lease until a renewal fails for `renew_deadline`: then return (leadership is lost)."""
        deadline = self.settings.renew_deadline_seconds
        while True:
            await asyncio.sleep(self.settings.retry_period_seconds)
            assert self.renewed_at is not None
            left = deadline - (time.monotonic() - self.renewed_at)
            if left > 0 and await self.try_acquire_or_renew(within=left):
                continue
            if time.monotonic() - self.renewed_at >= deadline or self.holder() not in (None, self.identity):
                return

    async def release(self) -> None:
        """Hand the Lease back (a clean stop): standbys take over at their next check, not after its duration."""
        if self.holder() != self.identity:
            return
        try:
            async with self.api.call_api("GET", version=API_VERSION, url=f"leases/{self.name}",
                                         namespace=self.namespace) as resp:
                lease = resp.json()
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1,
                    "renewTime": micro_time(dt.datetime.now(dt.UTC))}
            async with self.api.call_api("PUT", version=API_VERSION, url=f"leases/{self.name}",
                                         namespace=self.namespace, content=json.dumps({**lease, "spec": spec})):
                pass
            log.warning("leader election: %s released the Lease %s/%s", self.identity, self.namespace, self.name)
        except (kr8s.ServerError, kr8s.APITimeoutError, httpx.HTTPError, OSError) as err:  # it lapses anyway
            log.warning("leader election: could not release the Lease %s/%s: %s", self.namespace, self.name, err)


@contextlib.asynccontextmanager
async def standby_liveness(url: str | None) -> Any:
    """While standing by, answer the liveness URL (kopf serves it once leading): a standby is alive, not broken."""
    if not url:
        yield
        return
    from aiohttp import web  # kopf's own dependency, for its liveness endpoint

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"leader": False})

    parts = urlsplit(url)
    app = web.Application()
    app.router.add_get(parts.path or "/", alive)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname, parts.port or 80).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def run(settings: LeaderElectionSettings, liveness: str | None,
              operator: Callable[[], Coroutine[Any, Any, None]], kubeconfig: str | None = None) -> int:
    """Stand by until leading, then run `operator` (kopf) while the Lease is renewed; the process's exit status."""
    async with kubernetes_api.private_client(kubeconfig) as api:
        election = LeaderElection(api, settings, lease_namespace(settings.namespace))
        async with standby_liveness(liveness):
            if not await _until_signalled(election.acquire()):
                log.warning("leader election: %s stopped while standing by", election.identity)
                return 0
        metrics.LEADER.set(1)
        log.warning("leader election: %s leads; reconciling", election.identity)
        running = asyncio.create_task(operator())
        keeping = asyncio.create_task(election.keep())
        try:
            done, _ = await asyncio.wait({running, keeping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keeping.cancel()
        if running in done:  # stopped (SIGTERM) or failed: hand over at once
            await election.release()
            metrics.LEADER.set(0)
            running.result()
            return 0
        log.error("leader election: %s could not renew the Lease %s/%s for %ss; stopping so that another "
                  "replica can lead", election.identity, election.namespace, election.name,
                  settings.renew_deadline_seconds)
        metrics.LEADER.set(0)
        running.cancel()
        try:
            await asyncio.wait_for(running, timeout=settings.stop_grace_seconds)
        except (asyncio.CancelledError, TimeoutError):
            pass
        if not running.done():  # kopf did not stop in time: it must not reconcile past the Lease
            os._exit(EXIT_LOST)
        return EXIT_LOST


async def _until_signalled(work: Coroutine[Any, Any, None]) -> bool:
    """Run `work` unless SIGTERM or SIGINT comes first (a standby being stopped): whether it completed. kopf
    installs its own handlers once it runs."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(work)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await asyncio.wait({task})
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if task.cancelled():
        return False
    task.result()
    return True
