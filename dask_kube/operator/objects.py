"""The operator's reads and writes of Kubernetes objects, over kr8s: the I/O edge that observing and acting use.

Reads of the kinds the operator watches come from its `Cache` (what the watches delivered), and every write's
answer goes into it. Creates are idempotent (409 means it exists), deletes tolerate 404, and status writes happen
only on change.
Every request goes through one semaphore (`create-concurrency` in flight at most): hundreds of reconcile loops may
want the API at once, and requests queued inside the HTTP client's connection pool cost it time per request in
proportion to the queue.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import kr8s
import kr8s.asyncio
from kr8s.asyncio.objects import APIObject, NetworkPolicy, Pod, PodDisruptionBudget, Secret, Service, object_from_spec

from .. import kubernetes_api, status
from ..kinds import DaskAutoscaler, DaskCluster, DaskJob, DaskWorkerGroup
from . import events
from .cache import Cache
from .settings import OperatorSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
T = TypeVar("T", bound=APIObject)
KINDS: dict[str, type[APIObject]] = {cls.kind: cls for cls in (
    Pod, Service, Secret, NetworkPolicy, PodDisruptionBudget, DaskCluster, DaskWorkerGroup, DaskJob, DaskAutoscaler)}


def now_rfc3339() -> str:
    return status.rfc3339(dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class DryRunVerdict:
    """What the API server said of a spec: `rejection` is its first refusal; `known` is False when it could not
    answer (overload, restart), so that the spec is neither valid nor invalid yet."""

    known: bool
    rejection: str | None = None


class DryRunUnavailable(Exception):
    """The API server did not answer the dry run (overload, restart): the spec is neither valid nor invalid."""


class Objects:
    def __init__(self, api: kr8s.asyncio.Api, settings: OperatorSettings, cache: Cache) -> None:
        self.api = api
        self.settings = settings
        self.cache = cache
        self._limit = asyncio.Semaphore(settings.create_concurrency)
        self._events = events.EventRecorder(api, self._limit)

    def ref(self, kind: str, name: str, namespace: str) -> APIObject:
        return kubernetes_api.ref(KINDS[kind], name, namespace, self.api)

    async def get(self, cls: type[T], name: str, namespace: str) -> T | None:
        """The object, or None: from the cache for a watched kind, else one GET."""
        if self.cache.holds(cls.kind):
            raw = self.cache.get(cls.kind, namespace, name)
            return cls(raw, api=self.api) if raw is not None else None
        async with self._limit:
            return await kubernetes_api.get(cls, name, namespace, self.api)

    async def list(self, cls: type[T], namespace: str, selector: Mapping[str, str],
                   creating: bool = False) -> builtins.list[Obj]:
        """The bodies (read-only) of the objects whose labels include `selector`; with `creating`, also the creates
        of plans being acted on (act.py, cache.py). Plain dicts, not kr8s objects: wrapping one costs kr8s a
        deep copy into a `Box` (~0.5 ms a pod), and a pass over a group lists every pod of its cluster."""
        if self.cache.holds(cls.kind):
            return self.cache.list(cls.kind, namespace, selector, creating)
        async with self._limit:
            return [o.raw for o in await kubernetes_api.list_objects(cls, namespace, self.api, selector)]

    async def _call(self, method: str, cls: type[APIObject], namespace: str, name: str = "",
                    subresource: str = "", body: Any = None, content_type: str = "application/json",
                    params: Mapping[str, str] | None = None) -> Obj:
        """One request whose answer stays a plain dict (see `list`); errors are kr8s's `ServerError`."""
        url = "/".join(part for part in (cls.endpoint, name, subresource) if part)
        async with self.api.call_api(method, version=cls.version, url=url, namespace=namespace, params=params,
                                     content=None if body is None else json.dumps(body),
                                     headers={"Content-Type": content_type}) as resp:
            answer: Obj = resp.json()
            return answer

    async def patch(self, obj: APIObject, body: Mapping[str, Any]) -> None:
        async with self._limit:
            await obj.patch(dict(body))
        self.cache.store(obj.raw)

    async def create(self, body: Obj) -> Obj:
        """Create, or return the existing object of that name (a re-run after a crash finds its own work)."""
        cls = KINDS.get(body.get("kind", ""))
        if cls is None:  # not a kind the operator makes often: kr8s's generic way
            obj = object_from_spec(body, api=self.api)
            cls, namespace = type(obj), obj.namespace or ""
        else:
            namespace = body["metadata"].get("namespace") or self.api.namespace
        async with self._limit:
            try:
                raw = await self._call("POST", cls, namespace, body=body)
            except kr8s.ServerError as err:
                if not kubernetes_api.is_conflict(err):
                    raise
                raw = await self._call("GET", cls, namespace, name=body["metadata"]["name"])
        self.cache.store(raw)
        return raw

    async def create_many(self, bodies: Iterable[Obj]) -> builtins.list[Obj | BaseException]:
        """Concurrent creates; each result is the object or the exception it raised (all settle first)."""
        return await asyncio.gather(*(self.create(b) for b in bodies), return_exceptions=True)

    async def delete(self, obj: APIObject, grace_period: int | None = None) -> None:
        """Delete, tolerating "not found"."""
        async with self._limit:
            await kubernetes_api.delete(obj, grace_period=grace_period)
        self.cache.deleting(obj.kind, obj.namespace or "", obj.name, grace_period)

    async def delete_many(self, objs: Iterable[tuple[APIObject, int | None]]) -> None:
        results = await asyncio.gather(*(self.delete(o, grace) for o, grace in objs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def patch_status(self, obj: APIObject, new: Mapping[str, Any]) -> bool:
        """Merge `new` into the object's status; no request when nothing changes. True if written."""
        current = obj.raw.get("status") or {}
        if all(current.get(k) == v for k, v in new.items()):
            return False
        try:
            async with self._limit:
                raw = await self._call("PATCH", type(obj), obj.namespace or "", name=obj.name, subresource="status",
                                       body={"status": dict(new)}, content_type="application/merge-patch+json")
        except kr8s.ServerError as err:
            if kubernetes_api.is_not_found(err):
                return False
            raise
        self.cache.store(raw)  # the next pass reads it; `obj` itself keeps the body it was read with
        return True

    async def event(self, obj: APIObject, reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on `obj`, as `kubectl describe` shows them; a repeat counts up the one already there."""
        if not self.settings.events:
            return
        involved = {"apiVersion": obj.raw.get("apiVersion", obj.version), "kind": obj.kind,
                    "metadata": obj.raw["metadata"]}
        body = events.event_body(involved, reason, message, warning=warning, now=now_rfc3339(),
                                 instance=self.settings.instance)
        try:
            await self._events.record(body)
        except (kr8s.ServerError, events.EventNotCounted) as err:  # an Event is advice: never fail a reconcile
            log.warning("could not post event %s on %s/%s: %s", reason, obj.namespace, obj.name, err)

    async def validate(self, checks: Iterable[tuple[Obj, str]]) -> DryRunVerdict:
        """Dry-run each (body, what-to-call-a-refusal), concurrently (they are a cold start's first requests), and
        judge in order: the first refusal, or a server that could not answer (unknown is not invalid: the caller
        goes on and asks again next pass)."""
        checks = list(checks)
        answers = await asyncio.gather(*(self.dry_run(body) for body, _ in checks), return_exceptions=True)
        for (body, prefix), answer in zip(checks, answers, strict=True):
            if isinstance(answer, DryRunUnavailable):
                log.debug("dry run of %s %s/%s unavailable: %s", body["kind"], body["metadata"].get("namespace"),
                          body["metadata"].get("name"), answer)
                return DryRunVerdict(known=False)
            if isinstance(answer, BaseException):
                raise answer
            if answer:
                return DryRunVerdict(known=True, rejection=f"{prefix}: {answer}")
        return DryRunVerdict(known=True)

    async def dry_run(self, body: Obj) -> str | None:
        """Ask the API server whether it would accept `body` (strict fields); its error message, or None."""
        try:
            async with self._limit:
                await self._call("POST", KINDS[body["kind"]], body["metadata"]["namespace"], body=body,
                                 params={"dryRun": "All", "fieldValidation": "Strict"})
                return None
        except kr8s.ServerError as err:
            if kubernetes_api.is_rejection(err) or kubernetes_api.is_pod_security_refusal(err):
                return str(err)
            raise DryRunUnavailable(str(err)) from err
        except httpx.HTTPError as err:
            raise DryRunUnavailable(str(err)) from err

    async def last_logs(self, pod: Pod, tail: int = 10) -> str:
        """What a crash-looping container said last, for a condition's message."""
        async with self._limit:
            return await kubernetes_api.crash_logs(pod, tail=tail) or "(no logs)"
