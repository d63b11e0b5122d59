"""The operator's few Kubernetes operations, over kr8s: the I/O edge the reconcilers call.

Creates are idempotent (409 means it exists), deletes tolerate 404, status writes happen only on change, and
many creates or deletes run concurrently behind one semaphore.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import kr8s
import kr8s.asyncio
from kr8s.asyncio.objects import APIObject, Pod, object_from_spec

from ..forwarding import ForwardDenied
from .settings import OperatorSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def denied_message(err: BaseException) -> str | None:
    """The API server's own words when it refused a request for lack of permission (403), else None.

    kube-apiserver names the user, verb, resource and namespace (`pods is forbidden: User "..." cannot create
    resource "pods" in API group "" in the namespace "ns"`), which is exactly what an operator admin needs.
    """
    if isinstance(err, kr8s.ServerError) and err.response is not None and err.response.status_code == 403:
        return str(err)
    if isinstance(err, ForwardDenied):
        return str(err)
    return None


# Answers that mean "not now" rather than "no": too many requests, and the server or a proxy in front of it failing.
OUTAGE_STATUSES = frozenset({429, 500, 502, 503, 504})


def outage_message(err: BaseException) -> str | None:
    """One line for an API server that did not answer (a timeout, a refused or broken connection) or answered that
    it cannot now (429, 5xx), else None: such a failure is retried, and a traceback would add nothing."""
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return outage_message(err.exceptions[0])
    if isinstance(err, httpx.TimeoutException | kr8s.APITimeoutError):
        return f"the API server did not answer in time ({type(err).__name__})"
    if isinstance(err, httpx.TransportError):
        return f"the API server could not be reached ({type(err).__name__}: {err})"
    if isinstance(err, kr8s.ServerError) and err.response is not None and err.response.status_code in OUTAGE_STATUSES:
        return f"the API server answered {err.response.status_code}: {err}"
    return None


@dataclass(frozen=True)
class DryRunVerdict:
    """What the API server said of a spec: `rejection` is its first refusal; `known` is False when it could not
    answer (overload, restart), so that the spec is neither valid nor invalid yet."""

    known: bool
    rejection: str | None = None


class DryRunUnavailable(Exception):
    """The API server did not answer the dry run (overload, restart): the spec is neither valid nor invalid."""


def fingerprint(value: Any) -> str:
    """A stable digest of a JSON-able value: what was validated, so a scale (replicas only) needs no re-check."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class Kube:
    def __init__(self, api: kr8s.asyncio.Api, settings: OperatorSettings) -> None:
        self.api = api
        self.settings = settings
        self._limit = asyncio.Semaphore(settings.create_concurrency)

    async def get(self, cls: type[APIObject], name: str, namespace: str) -> APIObject | None:
        """The object, or None; one GET (kr8s's `get` retries a missing object for seconds)."""
        obj = cls({"metadata": {"name": name, "namespace": namespace}}, api=self.api)
        try:
            await obj.refresh()
        except kr8s.NotFoundError:
            return None
        return obj

    async def list(self, cls: type[APIObject], namespace: str, selector: Mapping[str, str]) -> list[APIObject]:
        return [o async for o in self.api.get(cls, namespace=namespace, label_selector=dict(selector))]

    async def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
        return await self.list(Pod, namespace, selector)  # type: ignore[return-value]

    async def create(self, body: Obj) -> APIObject:
        """Create, or return the existing object of that name (a re-run after a crash finds its own work)."""
        obj = object_from_spec(body, api=self.api)
        async with self._limit:
            try:
                await obj.create()
            except kr8s.ServerError as err:
                if err.response is None or err.response.status_code != 409:
                    raise
                await obj.refresh()
        return obj

    async def create_many(self, bodies: Iterable[Obj]) -> list[APIObject | BaseException]:
        """Concurrent creates; each result is the object or the exception it raised (all settle first)."""
        return await asyncio.gather(*(self.create(b) for b in bodies), return_exceptions=True)

    async def delete(self, obj: APIObject, grace_period: int | None = None) -> None:
        """Delete, tolerating "not found". `grace_period=0` removes a pod at once, even one whose node does not
        answer (kr8s drops a zero grace period unless it is asked to force)."""
        async with self._limit:
            try:
                if grace_period == 0:
                    await obj.delete(force=True)
                else:
                    await obj.delete(grace_period=grace_period)
            except kr8s.NotFoundError:
                pass

    async def delete_many(self, objs: Iterable[APIObject]) -> None:
        results = await asyncio.gather(*(self.delete(o) for o in objs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def patch_status(self, obj: APIObject, status: Mapping[str, Any]) -> bool:
        """Merge `status` into the object's status; no request when nothing changes. True if written."""
        current = obj.raw.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return False
        try:
            await obj.patch({"status": dict(status)}, subresource="status")
        except kr8s.NotFoundError:
            return False
        return True

    async def event(self, obj: APIObject, reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on `obj`, as `kubectl describe` shows them."""
        if not self.settings.events:
            return
        meta = obj.raw["metadata"]
        now = now_rfc3339()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj.raw.get("apiVersion", obj.version), "kind": obj.kind,
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": "dask-kube-operator"}, "reportingComponent": "dask-kube-operator",
            "reportingInstance": "dask-kube-operator", "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            async with self.api.call_api("POST", version="v1", url="events", namespace=meta["namespace"],
                                         content=json.dumps(body)):
                pass
        except kr8s.ServerError as err:  # an Event is advice: never fail a reconcile over it
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], err)

    async def validate(self, checks: Iterable[tuple[Obj, str]]) -> DryRunVerdict:
        """Dry-run each (body, what-to-call-a-refusal) in order, stopping at the first refusal or at a server that
        cannot answer (unknown is not invalid: the caller goes on and asks again next pass)."""
        for body, prefix in checks:
            try:
                message = await self.dry_run(body)
            except DryRunUnavailable as err:
                log.debug("dry run of %s %s/%s unavailable: %s", body["kind"], body["metadata"].get("namespace"),
                          body["metadata"].get("name"), err)
                return DryRunVerdict(known=False)
            if message:
                return DryRunVerdict(known=True, rejection=f"{prefix}: {message}")
        return DryRunVerdict(known=True)

    async def dry_run(self, body: Obj) -> str | None:
        """Ask the API server whether it would accept `body` (strict fields); its error message, or None."""
        version = body["apiVersion"]
        plural = {"Pod": "pods", "Service": "services"}[body["kind"]]
        try:
            async with self.api.call_api("POST", version=version, url=plural, namespace=body["metadata"]["namespace"],
                                         params={"dryRun": "All", "fieldValidation": "Strict"},
                                         content=json.dumps(body)):
                return None
        except kr8s.ServerError as err:
            if err.response is not None and err.response.status_code in (400, 422):
                return str(err)
            raise DryRunUnavailable(str(err)) from err
        except httpx.HTTPError as err:
            raise DryRunUnavailable(str(err)) from err

    async def pod_logs(self, pod: Pod, tail: int = 20) -> str:
        """The last lines of the pod's container; of its previous instance if the current one has none
        (a crash-looping container is waiting, and what it said before dying is the useful part)."""
        for previous in (False, True):
            try:
                lines = [line async for line in pod.logs(tail_lines=tail, previous=previous, timeout=10)]
            except kr8s.ServerError:
                continue
            if lines:
                return "\n".join(lines)
        return "(no logs)"
