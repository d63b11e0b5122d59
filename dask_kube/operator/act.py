"""The executor: applies any `Plan` to the object it was decided for, in one fixed order.

Patches, then creates (concurrent), then deletes (concurrent), then what the scheduler is asked to do, then the
status (only if it changes; condition transition times move only on real changes), then Events, then the
object's own deletion. Nothing here decides anything.
"""

from __future__ import annotations

import logging
from typing import Any

from kr8s.asyncio.objects import APIObject

from . import conditions
from .context import OperatorContext
from .objects import now_rfc3339
from .plan import Event, Plan, SchedulerCall
from .scheduler_rpc import SchedulerUnreachable

log = logging.getLogger(__name__)


async def act(ctx: OperatorContext, obj: APIObject, plan: Plan[Any]) -> None:
    objects = ctx.objects
    namespace, kind, name = obj.namespace or "", obj.kind, obj.name
    # The plan's creates are in flight from now, before the first await (the patches): another loop deciding
    # meanwhile counts them (cache.py), as a cluster's worker groups must under their shared cap.
    with ctx.cache.creating(plan.create, namespace):
        for patch in plan.patch:
            target = obj if (patch.kind, patch.name) == (kind, name) else objects.ref(patch.kind, patch.name,
                                                                                       namespace)
            await objects.patch(target, patch.body)
        results = await objects.create_many(plan.create) if plan.create else []
    if plan.create:
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures and not plan.tolerate_failed_creates:
            raise failures[0]
        if failures:
            log.warning("creating %d of %d objects for %s %s/%s failed: %s", len(failures), len(results), kind,
                        namespace, name, failures[0])
        if plan.replacement_event is not None and len(failures) < len(results):
            await _post(ctx, obj, plan.replacement_event)
    if plan.delete:
        await objects.delete_many((objects.ref(d.kind, d.name, namespace), d.grace_period) for d in plan.delete)
    for call in plan.scheduler:
        await _ask_scheduler(ctx, obj, call)
    for line in plan.log:
        log.info("%s %s/%s: %s", kind, namespace, name, line)
    new = dict(plan.status)
    current = obj.raw.get("status") or {}
    if plan.conditions is not None and not conditions.same(current.get("conditions"), plan.conditions):
        new["conditions"] = conditions.merge(current.get("conditions"), plan.conditions, now_rfc3339())
    if new and await objects.patch_status(obj, new):
        for key in plan.wake_on_status:
            ctx.loops.wake(key)
    for event in plan.events:
        await _post(ctx, obj, event)
    if plan.delete_self:
        await objects.delete(obj)


async def _post(ctx: OperatorContext, obj: APIObject, event: Event) -> None:
    log.log(logging.WARNING if event.warning else logging.INFO, "%s %s/%s: %s", obj.kind, obj.namespace, obj.name,
            event.message)
    await ctx.objects.event(obj, event.reason, event.message, warning=event.warning)


async def _ask_scheduler(ctx: OperatorContext, obj: APIObject, call: SchedulerCall) -> None:
    namespace = obj.namespace or ""
    names = sorted(call.workers)
    if call.op == "retire":
        retired = set(await ctx.scheduler.retire_workers(namespace, call.cluster, names))
        pods = [call.workers[n] for n in names if n in retired]
        if call.delete_pods:
            await ctx.objects.delete_many((ctx.objects.ref("Pod", p, namespace), None) for p in pods)
    else:
        try:
            pods = await ctx.scheduler.remove_workers(namespace, call.cluster, names)
        except SchedulerUnreachable as err:
            log.debug("%s %s/%s: could not remove workers %s: %s", obj.kind, namespace, obj.name, names, err)
            return
    if pods:
        text = call.event.message.format(count=len(pods), names=", ".join(pods))
        await _post(ctx, obj, call.event._replace(message=text))
