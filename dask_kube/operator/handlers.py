"""kopf wiring: one daemon per resource runs its reconcile loop; events fill the cache and wake loops.

Every watched object's body goes into the operator's `Cache` (cache.py), which the loops read instead of the API
server. Each watched resource also has an index handler that stores nothing in kopf's index but the body in the
cache: kopf starts no daemon and calls no event handler until every indexed resource has been listed, so a loop
never reads a cache that has not seen everything yet. Handlers and probes are coroutines: kopf runs sync ones in a
thread pool, and the cache, the loops' wake events and what the probes count belong to the event loop.

Each daemon makes the reconciler of its object, which holds everything the operator remembers about that object;
kopf ends the daemon when the object is deleted, and the memory goes with it. Handlers are registered on
`REGISTRY` (not kopf's global default), so importing this module never changes another operator's registry and
`kopf.run(registry=REGISTRY)` runs exactly these.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import naming
from ..naming import Component
from . import metrics
from .autoscaler import AutoscalerReconciler
from .context import OperatorContext
from .daskcluster import ClusterReconciler
from .daskjob import JobReconciler
from .settings import OperatorSettings
from .workergroup import WorkerGroupReconciler

REGISTRY = kopf.OperatorRegistry()
FINALIZER = f"{naming.GROUP}/operator"
BATCH_WINDOW = 0.01
log = logging.getLogger(__name__)

CLUSTERS = naming.PLURALS[naming.DASKCLUSTER]
GROUPS = naming.PLURALS[naming.DASKWORKERGROUP]
JOBS = naming.PLURALS[naming.DASKJOB]
AUTOSCALERS = naming.PLURALS[naming.DASKAUTOSCALER]


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf settings for an operator whose only state is in status and whose loops exit at once."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=naming.GROUP)
    # Reconcile loops are cancelled on deletion and exit immediately: do not hold finalizers for a minute.
    settings.background.cancellation_polling = 0.5
    settings.background.instant_exit_timeout = 0.5
    # Real API servers sometimes stop sending on a watch without closing it; reconnect before that matters.
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = ours.request_timeout
    settings.posting.level = logging.WARNING
    # Reads come from the watches (and a watch resumes where it stopped, with no relist): reopen them rarely,
    # since every reopen is a request. A stream that stops sending without closing is reopened after this too.
    settings.watching.server_timeout = ours.watch_timeout
    settings.watching.client_timeout = ours.watch_timeout + 30
    # kopf waits this long for more events of an object before handling its latest: every start-up step (pod
    # created, Running, Ready) waits for it, so keep it short.
    settings.batching.batch_window = BATCH_WINDOW


@kopf.on.startup(registry=REGISTRY)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = OperatorSettings.from_config()
    configure(settings, ours)
    ctx = await OperatorContext.create(ours)
    memo.ctx = ctx
    log.info("dask-kube operator started (scheduler access: %s)",
             "port-forward" if ctx.settings.use_port_forward else "service DNS")


@kopf.on.cleanup(registry=REGISTRY)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.ctx.close()


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Read credentials when the operator starts, not when kopf was imported (kopf's fallbacks decide then)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.probe(registry=REGISTRY, id="reconcile_loops")
async def probe_loops(memo: kopf.Memo, **_: Any) -> int:
    return int(memo.ctx.loops.running())


@kopf.on.probe(registry=REGISTRY, id="held_by_namespace")
async def probe_held(memo: kopf.Memo, **_: Any) -> dict[str, dict[str, int]]:
    """What the operator keeps per object, by namespace: nothing for a namespace whose objects are all gone."""
    held: dict[str, dict[str, int]] = memo.ctx.held()
    return held


# -- one reconcile loop per object -----------------------------------------------------------------------------


def _namespaced(namespace: str | None) -> str:
    assert namespace is not None, "the Dask kinds and pods are namespaced"
    return namespace


@kopf.daemon(naming.GROUP, naming.VERSION, CLUSTERS, registry=REGISTRY, cancellation_timeout=5)
async def daskcluster_loop(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    namespace = _namespaced(namespace)
    async with ctx.scheduler.serving(namespace, name):  # its scheduler's connection lives as long as this loop
        await ctx.loops.run((CLUSTERS, namespace, name), ClusterReconciler(ctx, namespace, name).reconcile)


@kopf.daemon(naming.GROUP, naming.VERSION, GROUPS, registry=REGISTRY, cancellation_timeout=5)
async def daskworkergroup_loop(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    namespace = _namespaced(namespace)
    await ctx.loops.run((GROUPS, namespace, name), WorkerGroupReconciler(ctx, namespace, name).reconcile)


@kopf.daemon(naming.GROUP, naming.VERSION, JOBS, registry=REGISTRY, cancellation_timeout=5)
async def daskjob_loop(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    namespace = _namespaced(namespace)
    await ctx.loops.run((JOBS, namespace, name), JobReconciler(ctx, namespace, name).reconcile)


@kopf.daemon(naming.GROUP, naming.VERSION, AUTOSCALERS, registry=REGISTRY, cancellation_timeout=5)
async def daskautoscaler_loop(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    namespace = _namespaced(namespace)
    await ctx.loops.run((AUTOSCALERS, namespace, name), AutoscalerReconciler(ctx, namespace, name).reconcile)


# -- the cache: filled from the initial listings on (index handlers), kept by every event ------------------------

CHILDREN = {naming.CLUSTER_LABEL: kopf.PRESENT}


async def _store(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.cache.store(dict(body))


for _resource, _labels in (((naming.GROUP, naming.VERSION, CLUSTERS), None),
                           ((naming.GROUP, naming.VERSION, GROUPS), None),
                           ((naming.GROUP, naming.VERSION, JOBS), None),
                           ((naming.GROUP, naming.VERSION, AUTOSCALERS), None),
                           (("pods",), CHILDREN), (("services",), CHILDREN)):
    kopf.index(*_resource, labels=_labels, registry=REGISTRY, id=f"cache-{_resource[-1]}")(_store)


# -- events wake the loops they concern --------------------------------------------------------------------------


@kopf.on.event(naming.GROUP, naming.VERSION, CLUSTERS, registry=REGISTRY)
async def daskcluster_event(name: str, namespace: str | None, meta: kopf.Meta, status: kopf.Status, type: str | None,
                            memo: kopf.Memo, event: kopf.RawEvent, **_: Any) -> None:
    memo.ctx.cache.observe(event["type"], event["object"])
    namespace = _namespaced(namespace)
    if type == "DELETED":
        metrics.cluster_gone(namespace, name)
    else:
        metrics.cluster_seen(namespace, name, status.get("phase"))
    memo.ctx.loops.wake((CLUSTERS, namespace, name))
    memo.ctx.loops.wake((GROUPS, namespace, naming.default_worker_group_name(name)))
    for owner in meta.get("ownerReferences") or ():  # a DaskJob waits on its cluster's phase
        if owner.get("kind") == naming.DASKJOB and owner.get("controller"):
            memo.ctx.loops.wake((JOBS, namespace, owner["name"]))


@kopf.on.event(naming.GROUP, naming.VERSION, GROUPS, registry=REGISTRY)
async def daskworkergroup_event(name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status,
                                type: str | None, memo: kopf.Memo, event: kopf.RawEvent, **_: Any) -> None:
    memo.ctx.cache.observe(event["type"], event["object"])
    namespace = _namespaced(namespace)
    if type == "DELETED":
        metrics.group_gone(namespace, name)
    elif spec.get("cluster"):
        metrics.group_seen(namespace, name, spec["cluster"], int((spec.get("worker") or {}).get("replicas", 1)),
                           int(status.get("readyReplicas") or 0))
    memo.ctx.loops.wake((GROUPS, namespace, name))
    if spec.get("cluster"):
        memo.ctx.loops.wake((CLUSTERS, namespace, spec["cluster"]))


@kopf.on.event(naming.GROUP, naming.VERSION, JOBS, registry=REGISTRY)
async def daskjob_event(name: str, namespace: str | None, memo: kopf.Memo, event: kopf.RawEvent, **_: Any) -> None:
    memo.ctx.cache.observe(event["type"], event["object"])
    memo.ctx.loops.wake((JOBS, _namespaced(namespace), name))


@kopf.on.event(naming.GROUP, naming.VERSION, AUTOSCALERS, registry=REGISTRY)
async def daskautoscaler_event(name: str, namespace: str | None, memo: kopf.Memo, event: kopf.RawEvent,
                               **_: Any) -> None:
    memo.ctx.cache.observe(event["type"], event["object"])
    memo.ctx.loops.wake((AUTOSCALERS, _namespaced(namespace), name))


@kopf.on.event("pods", labels=CHILDREN, registry=REGISTRY)
async def pod_event(labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, event: kopf.RawEvent,
                    **_: Any) -> None:
    memo.ctx.cache.observe(event["type"], event["object"])
    namespace = _namespaced(namespace)
    cluster = labels[naming.CLUSTER_LABEL]
    component = labels.get(naming.COMPONENT_LABEL)
    if component == Component.JOB_RUNNER:
        memo.ctx.loops.wake((JOBS, namespace, cluster))
        return
    memo.ctx.loops.wake((CLUSTERS, namespace, cluster))
    group = labels.get(naming.WORKERGROUP_LABEL)
    if group:
        memo.ctx.loops.wake((GROUPS, namespace, group))


@kopf.on.event("services", labels=CHILDREN, registry=REGISTRY)
async def service_event(labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, event: kopf.RawEvent,
                        **_: Any) -> None:
    """A scheduler Service changed or went: its cluster looks (and recreates a deleted one)."""
    memo.ctx.cache.observe(event["type"], event["object"])
    memo.ctx.loops.wake((CLUSTERS, _namespaced(namespace), labels[naming.CLUSTER_LABEL]))
