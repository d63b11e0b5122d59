"""What the operator asks the API server for a new cluster, counted by LocalKube (a counting rule matches and lets
each request through). A hundred clusters pay these a hundred times: the scale benchmark's request budget
(docs/benchmarks.md) is made of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from localkube.testing import until

from dask_kube import naming, specs

pytestmark = pytest.mark.e2e

SIMULATED = {"localkube.dask.org/simulate": "true"}  # Running with no process: nothing here needs one
UNLIMITED = 1_000_000


def _counter(local_kube: Any, pattern: str, method: str) -> Any:
    """A rule that fails nothing: what it matched is UNLIMITED minus its `count`."""
    return local_kube.call(local_kube.kube.fail_requests, pattern, status=None, count=UNLIMITED, method=method,
                           user_agent="kr8s")


def _seen(local_kube: Any, rule: Any) -> int:
    return UNLIMITED - local_kube.call(getattr, rule, "count")


def _disarm(local_kube: Any, *rules: Any) -> None:
    for rule in rules:
        local_kube.call(setattr, rule, "count", 0)


def _group_pods(kubectl: Any, group: str) -> int:
    out = kubectl("get", "pods", "-l", f"{naming.WORKERGROUP_LABEL}={group}", "-o", "json")
    return len(json.loads(out.stdout)["items"])


def test_one_dry_run_of_the_worker_pod_and_no_get_of_the_cluster(kubectl, operator, namespace,  # type: ignore[no-untyped-def]
                                                                  local_kube) -> None:
    dry_pods = _counter(local_kube, rf"/namespaces/{namespace}/pods\?.*dryRun", "POST")
    cluster_gets = _counter(local_kube, rf"/namespaces/{namespace}/daskclusters/[^/?]+$", "GET")
    try:
        body = specs.make_cluster_spec("budget", n_workers=2)
        body["spec"]["scheduler"]["metadata"] = {"annotations": SIMULATED}
        body["spec"]["worker"]["metadata"] = {"annotations": SIMULATED}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
        until(lambda: _group_pods(kubectl, "budget-default") == 2, "2 worker pods", 60)
        # The cluster's check dry-runs its scheduler pod and one worker pod; its default group, made from the same
        # template, does not ask again. The scheduler's connection settings come from the watch cache.
        assert _seen(local_kube, dry_pods) == 2
        assert _seen(local_kube, cluster_gets) == 0

        # A group of the user's own is checked by the server before any pod is made.
        extra = {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP,
                 "metadata": {"name": "budget-extra"},
                 "spec": {"cluster": "budget", "worker": {**body["spec"]["worker"], "replicas": 1}}}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(extra))
        until(lambda: _group_pods(kubectl, "budget-extra") == 1, "the extra group's worker pod", 60)
        assert _seen(local_kube, dry_pods) == 3
    finally:
        _disarm(local_kube, dry_pods, cluster_gets)
