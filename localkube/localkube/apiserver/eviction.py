"""The Eviction API, `POST pods/NAME/eviction`: a graceful delete that asks the pod's PodDisruptionBudget first.

kubectl drain, cluster autoscalers and operators rely on kube-apiserver's exact rules:

- The body is a policy/v1 `Eviction` naming the pod (policy/v1beta1 is still accepted, as kube-apiserver 1.35
  accepts it); its `deleteOptions` (grace period, preconditions, dryRun) apply to the delete.
- A pod that is Pending, finished or already deleting is deleted without asking any budget: its disruption has
  already happened.
- Otherwise the budgets of the namespace whose selector matches the pod decide. More than one is a 500; none lets
  the delete go ahead. With one, an unready pod is deleted without spending the budget when the budget is met
  (`unhealthyPodEvictionPolicy` IfHealthyBudget, the default) or always (AlwaysAllow). Anything else spends one
  disruption: `status.disruptionsAllowed` goes down by one and the pod is recorded in `status.disruptedPods` (so
  that the disruption controller stops counting it healthy), or the eviction is refused with 429 when none is left
  or while the controller has not yet observed the budget's generation.
- The pod gets the `DisruptionTarget` condition (`EvictionByEvictionAPI`) just before its graceful delete.

`decide` is pure; `evict` reads the store and writes. It runs synchronously on the server's loop, so the check,
the decrement and the delete are one step: no other eviction can spend the same disruption in between (the real
server gets there with resourceVersion preconditions and retries).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localkube.apiserver import budgets
from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import ApiError, forbidden

Obj = dict[str, Any]

ACCEPTED_VERSIONS = ("policy/v1", "policy/v1beta1")
# More recorded disruptions than this means the controller is not keeping up: refuse rather than pile on.
MAX_DISRUPTED_PODS = 2000
BUDGET_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
SUCCESS: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


@dataclass(frozen=True)
class Options:
    """The delete an eviction asks for."""

    grace_period: int | None = None
    preconditions: Mapping[str, Any] | None = None
    propagation: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Verdict:
    """What to do: refuse, or delete the pod after writing `budget_status` to the budget `budget` (if any)."""

    refusal: ApiError | None = None
    budget: str | None = None
    budget_status: Obj | None = None


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def parse(body: Any, namespace: str, name: str, query_dry_run: bool) -> Options:
    """The eviction's delete options, or the 400 kube-apiserver answers for a body it cannot take."""
    if not isinstance(body, Mapping):
        raise _bad_request("the body of the request was in an unknown format")
    api_version = str(body.get("apiVersion") or "policy/v1")
    kind = str(body.get("kind") or "Eviction")
    if api_version not in ACCEPTED_VERSIONS or kind != "Eviction":
        version = api_version.rpartition("/")[2]
        raise _bad_request(f'{kind} in version "{version}" cannot be handled as a Eviction: no kind "{kind}" is '
                           f'registered for version "{api_version}" in scheme "pkg/api/legacyscheme/scheme.go:30"')
    meta = body.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
    if meta.get("name") != name:
        raise _bad_request("name in URL does not match name in Eviction object")
    opts = body.get("deleteOptions") or {}
    body_dry_run = list(opts.get("dryRun") or [])
    query = ["All"] if query_dry_run else []
    if body_dry_run and query and body_dry_run != query:
        raise ApiError(500, "Internal error occurred: Non-matching dry-run options in request and content: "
                            f"[{' '.join(query)}] and [{' '.join(body_dry_run)}]")
    propagation = opts.get("propagationPolicy")
    if propagation is None and opts.get("orphanDependents") is not None:
        propagation = "Orphan" if opts["orphanDependents"] else "Background"
    return Options(grace_period=opts.get("gracePeriodSeconds"), preconditions=opts.get("preconditions"),
                   propagation=propagation, dry_run="All" in (body_dry_run or query))


def budgets_ignored(pod: Mapping[str, Any]) -> bool:
    """Pending, finished or deleting pods are deleted without asking budgets (canIgnorePDB)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Pending", "Succeeded", "Failed") or bool(pod["metadata"].get("deletionTimestamp"))


def too_many_requests(cause: str, retry_after: int = 0) -> ApiError:
    """429 with a `DisruptionBudget` cause; a retry hint also sets `Retry-After`, which client-go obeys."""
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers: dict[str, str] = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return ApiError(429, BUDGET_VIOLATION, details=details, headers=headers)


def budget_refusal(pdb: Mapping[str, Any]) -> ApiError | None:
    """Why `pdb` cannot give one more disruption now, or None (checkAndDecrement's checks, in its order)."""
    name = pdb["metadata"]["name"]
    status = pdb.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
        return too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        return forbidden("poddisruptionbudget.policy", name, "pdb disruptions allowed is negative", "policy")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        return forbidden("poddisruptionbudget.policy", name,
                         "DisruptedPods map too big - too many evictions not confirmed by PDB controller", "policy")
    if allowed == 0:
        return too_many_requests(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                 f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    return None


def charged(pdb: Mapping[str, Any], pod_name: str, now: str) -> Obj:
    """`pdb`'s status with one disruption spent on `pod_name`."""
    status = copy.deepcopy(dict(pdb.get("status") or {}))
    status["disruptionsAllowed"] = int(status.get("disruptionsAllowed") or 0) - 1
    if status["disruptionsAllowed"] == 0:
        condition = budgets.allowed_condition(0, int(status.get("observedGeneration") or 0))
        status["conditions"] = budgets.set_condition(status.get("conditions"), condition, now)
    status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now}
    return status


def decide(pod: Mapping[str, Any], pdbs: Sequence[Mapping[str, Any]], now: str, *, dry_run: bool = False) -> Verdict:
    """Whether evicting `pod` may go ahead given the budgets of its namespace, and what it costs."""
    if budgets_ignored(pod):
        return Verdict()
    matching = [p for p in pdbs if budgets.selects(p, pod)]
    if len(matching) > 1:
        return Verdict(refusal=ApiError(500, MULTIPLE_BUDGETS, reason=""))
    if not matching:
        return Verdict()
    pdb = matching[0]
    status = pdb.get("status") or {}
    if not budgets.pod_ready(pod):
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == budgets.ALWAYS_ALLOW:
            return Verdict()
        desired = int(status.get("desiredHealthy") or 0)
        if int(status.get("currentHealthy") or 0) >= desired > 0:
            return Verdict()  # the budget is met without this pod: deleting it disrupts nothing
    refusal = budget_refusal(pdb)
    if refusal is not None:
        return Verdict(refusal=refusal)
    name = pdb["metadata"]["name"]
    return Verdict(budget=name, budget_status=None if dry_run else charged(pdb, pod["metadata"]["name"], now))


def _check_preconditions(pod: Mapping[str, Any], preconditions: Mapping[str, Any] | None) -> None:
    """The conflict kube-apiserver reports when the pod it would mark is not the one the client named."""
    if not preconditions:
        return
    meta = pod["metadata"]
    uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
    if uid and uid != meta["uid"]:
        why = (f"the UID in the precondition ({uid}) does not match the UID in record ({meta['uid']}). "
               "The object might have been deleted and then recreated")
    elif rv and rv != meta["resourceVersion"]:
        why = (f"the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record "
               f"({meta['resourceVersion']}). The object might have been modified")
    else:
        return
    raise ApiError(409, f'Operation cannot be fulfilled on Pod "{meta["name"]}": {why}', "Conflict",
                   details={"name": meta["name"], "group": "", "kind": "Pod"})


def _disruption_target(now: str) -> Any:
    condition = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
                 "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}

    def mark(pod: Obj) -> None:
        status = pod.setdefault("status", {})
        conditions = list(status.get("conditions") or ())
        for i, current in enumerate(conditions):
            if current.get("type") == "DisruptionTarget":
                since = current.get("lastTransitionTime") if current.get("status") == "True" else now
                conditions[i] = {**condition, "lastTransitionTime": since}
                break
        else:
            conditions.append(condition)
        status["conditions"] = conditions

    return mark


def evict(core: ApiCore, namespace: str, name: str, body: Any, *, dry_run: bool = False) -> Obj:
    """Serve one eviction: the success Status, or raise the refusal."""
    options = parse(body, namespace, name, dry_run)
    pod_kind = core.kind_of(POD_KEY)
    pod = core.get(pod_kind, namespace, name)
    if not options.dry_run:
        _check_preconditions(pod, options.preconditions)
    now = core.now()
    verdict = decide(pod, core.store.list(budgets.PDB_KEY, namespace), now, dry_run=options.dry_run)
    if verdict.refusal is not None:
        raise verdict.refusal
    # The delete's own checks (propagation policy, protected objects) refuse before anything is written.
    core.delete(pod_kind, namespace, name, propagation=options.propagation, dry_run=True)
    if verdict.budget is not None and verdict.budget_status is not None:
        status = verdict.budget_status
        core.mutate(core.kind_of(budgets.PDB_KEY), namespace, verdict.budget,
                    lambda pdb: pdb.__setitem__("status", copy.deepcopy(status)), subresource="status")
    if not options.dry_run:
        core.mutate(pod_kind, namespace, name, _disruption_target(now), subresource="status")
    # The preconditions were checked against the pod just read; the condition write changed its version since.
    core.delete(pod_kind, namespace, name, grace_period=options.grace_period, propagation=options.propagation,
                preconditions=options.preconditions if options.dry_run else None, dry_run=options.dry_run)
    return dict(SUCCESS)
