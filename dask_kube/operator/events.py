"""core/v1 Events posted the way Kubernetes' own components post them: a repeat is counted, not re-created.

An Event is identified by what makes it "the same" (the involved object, type, reason, message and source
component): its name is `<object>.<digest of those>`, so a repeat finds the object of the first one with one
create answered 409, then bumps its `count` and `lastTimestamp` under a resourceVersion precondition (two
replicas, or two loops, counting at once lose nothing: the loser of a race reads again). The name depends on
nothing held in memory, so counting goes on across operator restarts and leader changes. Once the API server has
expired an Event (an hour, by default), the next repeat starts again at count 1, as with kubectl's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import weakref
from typing import Any

import kr8s
import kr8s.asyncio

from .. import kubernetes_api

COMPONENT = "dask-kube-operator"
MAX_MESSAGE = 1024  # kube-apiserver refuses longer Event messages
NAME_LIMIT = 253  # a DNS subdomain
DIGEST_LENGTH = 16
COUNT_ATTEMPTS = 8  # tries to count one repeat before giving up (each lost try means someone else counted)
RETRY_JITTER = 0.05  # seconds, times the try number: two replicas racing on one Event drift apart
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
Obj = dict[str, Any]


def event_body(involved: Obj, reason: str, message: str, *, warning: bool, now: str, instance: str) -> Obj:
    """The first occurrence of an Event on the object `involved` (its apiVersion, kind and metadata)."""
    meta = involved["metadata"]
    ref = {"apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": meta["name"],
           "namespace": meta["namespace"], "uid": meta.get("uid")}
    body: Obj = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"namespace": meta["namespace"]},
        "involvedObject": ref, "reason": reason, "message": message[:MAX_MESSAGE],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": instance,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    body["metadata"]["name"] = event_name(body)
    return body


def event_name(body: Obj) -> str:
    """`<object name>.<digest>` of what makes two Events the same one (not the instance that posted it)."""
    ref = body["involvedObject"]
    key = [ref["apiVersion"], ref["kind"], ref["namespace"], ref["name"], ref.get("uid"), body["type"],
           body["reason"], body["message"], body["source"]["component"]]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:DIGEST_LENGTH]
    return f"{ref['name'][:NAME_LIMIT - DIGEST_LENGTH - 1]}.{digest}"


def repeat_patch(current: Obj, now: str, instance: str) -> Obj:
    """The merge patch that counts one more occurrence of the Event `current`, only if it is still that version."""
    return {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "count": int(current.get("count") or 1) + 1, "lastTimestamp": now, "reportingInstance": instance}


class EventNotCounted(Exception):
    """The Event kept changing (or vanishing) under us for `COUNT_ATTEMPTS` tries."""


class EventRecorder:
    """Posts and counts Events for one operator. Repeats of one Event from this process take turns (a lock per Event
    name, gone once nobody waits on it), so only another process can make a count retry."""

    def __init__(self, api: kr8s.asyncio.Api, limit: asyncio.Semaphore) -> None:
        self.api = api
        self.limit = limit
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def record(self, body: Obj) -> int:
        """Post `body` (from `event_body`), or count it on the Event already there; the count it now has.

        Raises kr8s.ServerError when the API server refuses, EventNotCounted when others keep changing it (the
        caller decides whether an Event is worth failing for).
        """
        name = body["metadata"]["name"]
        turn = self._turns.get(name)
        if turn is None:
            turn = self._turns[name] = asyncio.Lock()
        async with turn:
            for attempt in range(COUNT_ATTEMPTS):
                if attempt:  # another process counted at the same moment: let one of us go first
                    await asyncio.sleep(random.uniform(0, RETRY_JITTER * attempt))
                count = await self._try(body)
                if count is not None:
                    return count
        raise EventNotCounted(f"Event {body['metadata']['namespace']}/{name} changed {COUNT_ATTEMPTS} times while "
                              "it was being counted")

    async def _try(self, body: Obj) -> int | None:
        """Create the Event or count one more on it; None if it changed or vanished meanwhile."""
        api, namespace, name = self.api, body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            async with self.limit, api.call_api("POST", version="v1", url="events", namespace=namespace,
                                                content=json.dumps(body)):
                return 1
        except kr8s.ServerError as err:
            if not kubernetes_api.is_conflict(err):
                raise
        try:
            async with self.limit, api.call_api("GET", version="v1", url=f"events/{name}",
                                                namespace=namespace) as resp:
                current = resp.json()
            patch = repeat_patch(current, body["lastTimestamp"], body["reportingInstance"])
            async with self.limit, api.call_api("PATCH", version="v1", url=f"events/{name}", namespace=namespace,
                                                headers=MERGE_PATCH, content=json.dumps(patch)):
                return int(patch["count"])
        except kr8s.ServerError as err:
            # 404: it expired since our create; 409: someone counted first. Either way, start again.
            if kubernetes_api.is_not_found(err) or kubernetes_api.is_conflict(err):
                return None
            raise
