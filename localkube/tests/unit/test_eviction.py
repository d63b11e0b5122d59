"""The Eviction API's decisions, without a server: which budget applies, when it refuses, what it spends."""

from __future__ import annotations

from typing import Any

import pytest

from localkube.apiserver.errors import ApiError
from localkube.apiserver.eviction import Options, decide, parse

NOW = "2026-12-01T10:00:00Z"


def pod(name: str = "web-1", *, phase: str = "Running", ready: bool = True, deleting: bool = False,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
                            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(name: str = "web", *, allowed: int = 1, current: int = 3, desired: int = 2, generation: int = 1,
        observed: int = 1, selector: Any = "app", policy: str | None = None,
        disrupted: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"minAvailable": desired}
    if selector == "app":
        spec["selector"] = {"matchLabels": {"app": "web"}}
    elif selector is not None:
        spec["selector"] = selector
    if policy:
        spec["unhealthyPodEvictionPolicy"] = policy
    status: dict[str, Any] = {"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
                              "expectedPods": 3, "observedGeneration": observed,
                              "conditions": [{"type": "DisruptionAllowed", "status": "True" if allowed > 0 else
                                              "False", "reason": "SufficientPods" if allowed > 0 else
                                              "InsufficientPods", "message": "", "observedGeneration": observed,
                                              "lastTransitionTime": "2026-12-01T09:00:00Z"}]}
    if disrupted is not None:
        status["disruptedPods"] = disrupted
    return {"metadata": {"name": name, "namespace": "ns", "generation": generation}, "spec": spec, "status": status}


@pytest.mark.parametrize(("the_pod", "pdbs", "outcome"), [
    # No budget selects the pod: plain delete.
    (pod(), [], "delete"),
    (pod(labels={"app": "db"}), [pdb()], "delete"),
    (pod(), [pdb(selector=None)], "delete"),  # a nil selector covers nothing
    (pod(), [pdb(selector={})], "charge web"),  # an empty one covers the whole namespace
    # Pods whose disruption already happened skip budgets, even an exhausted one.
    (pod(phase="Pending"), [pdb(allowed=0)], "delete"),
    (pod(phase="Succeeded"), [pdb(allowed=0)], "delete"),
    (pod(phase="Failed"), [pdb(allowed=0)], "delete"),
    (pod(deleting=True), [pdb(allowed=0)], "delete"),
    # A ready pod spends a disruption, or is refused.
    (pod(), [pdb(allowed=1)], "charge web"),
    (pod(), [pdb(allowed=0, current=2)], "429 The disruption budget web needs 2 healthy pods and has 2 currently"),
    (pod(), [pdb(generation=2, observed=1)], "429 The disruption budget web is still being processed by the server."),
    (pod(), [pdb(allowed=-1)],
     '403 poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is negative'),
    (pod(), [pdb(disrupted={f"p{i}": NOW for i in range(2001)})],
     '403 poddisruptionbudget.policy "web" is forbidden: DisruptedPods map too big - too many evictions not '
     "confirmed by PDB controller"),
    (pod(), [pdb(), pdb("other")], "500 This pod has more than one PodDisruptionBudget, which the eviction "
                                   "subresource does not support."),
    # Unready pods: free while the budget is met (IfHealthyBudget, the default), always with AlwaysAllow.
    (pod(ready=False), [pdb(allowed=0, current=2, desired=2)], "delete"),
    (pod(ready=False), [pdb(allowed=0, current=2, desired=2, policy="IfHealthyBudget")], "delete"),
    (pod(ready=False), [pdb(allowed=0, current=1, desired=2)],
     "429 The disruption budget web needs 2 healthy pods and has 1 currently"),
    (pod(ready=False), [pdb(allowed=1, current=1, desired=0)], "charge web"),  # desiredHealthy 0: not "met"
    (pod(ready=False), [pdb(allowed=0, current=0, desired=2, policy="AlwaysAllow")], "delete"),
])
def test_decide(the_pod: dict[str, Any], pdbs: list[dict[str, Any]], outcome: str) -> None:
    verdict = decide(the_pod, pdbs, NOW)
    if verdict.refusal is not None:
        err = verdict.refusal
        cause = ((err.details or {}).get("causes") or [{}])[0].get("message")
        got = f"{err.code} {cause or err.message}"
    else:
        got = f"charge {verdict.budget}" if verdict.budget else "delete"
    assert got == outcome


def test_a_refusal_is_the_real_429() -> None:
    err = decide(pod(), [pdb(allowed=0, current=2)], NOW).refusal
    assert err is not None
    status = err.status()
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                      "reason": "TooManyRequests", "code": 429, "details": {"causes": [
                          {"reason": "DisruptionBudget",
                           "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}}
    assert "Retry-After" not in err.headers  # kubectl drain retries after its own 5 s
    waiting = decide(pod(), [pdb(generation=2)], NOW).refusal
    assert waiting is not None and waiting.headers == {"Retry-After": "10"}
    assert waiting.status()["details"]["retryAfterSeconds"] == 10
    several = decide(pod(), [pdb(), pdb("b")], NOW).refusal
    assert several is not None and "reason" not in several.status()  # a Status with a code but no reason


def test_spending_the_last_disruption_records_the_pod_and_flips_the_condition() -> None:
    verdict = decide(pod("web-1"), [pdb(allowed=1, disrupted={"web-0": "2026-12-01T09:59:00Z"})], NOW)
    status = verdict.budget_status
    assert status is not None
    assert status["disruptionsAllowed"] == 0
    assert status["disruptedPods"] == {"web-0": "2026-12-01T09:59:00Z", "web-1": NOW}
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                                     "message": "", "observedGeneration": 1, "lastTransitionTime": NOW}]
    spare = decide(pod(), [pdb(allowed=2)], NOW).budget_status
    assert spare is not None and spare["disruptionsAllowed"] == 1
    assert spare["conditions"][0]["status"] == "True"  # still allowed: the condition stays as it was
    assert decide(pod(), [pdb(allowed=1)], NOW, dry_run=True).budget_status is None  # dry run writes nothing


EVICTION = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"}}


@pytest.mark.parametrize(("body", "query_dry_run", "expected"), [
    (EVICTION, False, Options()),
    ({**EVICTION, "apiVersion": "policy/v1beta1"}, False, Options()),
    ({"metadata": {"name": "web-1"}}, False, Options()),  # apiVersion and kind default to policy/v1 Eviction
    ({**EVICTION, "deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": "u"}}}, False,
     Options(grace_period=5, preconditions={"uid": "u"})),
    ({**EVICTION, "deleteOptions": {"dryRun": ["All"]}}, False, Options(dry_run=True)),
    (EVICTION, True, Options(dry_run=True)),
    ({**EVICTION, "deleteOptions": {"orphanDependents": True}}, False, Options(propagation="Orphan")),
    ({**EVICTION, "metadata": {"name": "other"}}, False, "400 name in URL does not match name in Eviction object"),
    ({**EVICTION, "metadata": {"name": "web-1", "namespace": "elsewhere"}}, False,
     "400 the namespace of the provided object does not match the namespace sent on the request"),
    ({**EVICTION, "apiVersion": "v1"}, False,
     '400 Eviction in version "v1" cannot be handled as a Eviction: no kind "Eviction" is registered for version '
     '"v1" in scheme "pkg/api/legacyscheme/scheme.go:30"'),
    ({**EVICTION, "deleteOptions": {"dryRun": ["Bogus"]}}, True,
     "500 Internal error occurred: Non-matching dry-run options in request and content: [All] and [Bogus]"),
])
def test_parse(body: dict[str, Any], query_dry_run: bool, expected: Options | str) -> None:
    try:
        got: Options | str = parse(body, "ns", "web-1", query_dry_run)
    except ApiError as err:
        got = f"{err.code} {err.message}"
    assert got == expected
