"""Two operator replicas with leader election on a Lease: only the leader reconciles; SIGKILLed mid-scale, it is
replaced by the standby, which finishes the scale within 20 s with no duplicate pod and nothing missed (a pod
deleted while nobody led is replaced); a replica stopped cleanly hands the Lease back at once."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.conftest import OperatorProcess
from tests.reliability import Kubectl, apply, cluster_body, exactly, get, orphans, running, status, until, worker_pods

pytestmark = [pytest.mark.e2e, pytest.mark.localkube_only]
LEADS = b"leads; reconciling"
WAITS = b"waits for the Lease"
FAILOVER_SECONDS = 20


def lease(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(get(kubectl, "lease", name).get("spec") or {})


def test_a_standby_takes_over_from_a_killed_leader_mid_scale(kube: Any, kubectl: Kubectl, operator: Any,
                                                              namespace: str, tmp_path: Any, local_kube: Any) -> None:
    name = f"op-{namespace}"
    args = ("--leader-elect", "--lease-namespace", namespace, "--lease-name", name)
    env = {"DASK_KUBERNETES__OPERATOR__CREATE_CONCURRENCY": "2"}  # with slow creates (below): a scale takes seconds
    first = OperatorProcess(kube.kubeconfig, tmp_path / "first.log", args=args, env=env, ready=LEADS)
    second = OperatorProcess(kube.kubeconfig, tmp_path / "second.log", args=args, env=env, ready=WAITS)
    slow = None
    operator.stop()  # the session's operator reconciles every namespace: these two replicas replace it here
    try:
        first.start()
        second.start()
        holder = lease(kubectl, name)["holderIdentity"]
        apply(kubectl, cluster_body("ha", 0))
        running(kubectl, "ha")
        assert LEADS not in second.log_path.read_bytes(), "the standby reconciles while the leader holds the Lease"
        assert 'dask_kube_operator_leader 0.0' in second.metrics()
        with urllib.request.urlopen(second.probe_url, timeout=10) as resp:  # a standby is alive, and says so
            assert json.loads(resp.read()) == {"leader": False}

        # Each pod create of the leader takes 0.5 s, two at a time: the kill surely lands mid-scale.
        slow = local_kube.call(local_kube.kube.fail_requests, f"/namespaces/{namespace}/pods$", status=None,
                               delay=0.5, count=1000, method="POST", user_agent="kr8s")
        kubectl("scale", "daskcluster", "ha", "--replicas=30")
        until(lambda: 0 < len(worker_pods(kubectl, "ha")) < 30, "the scale to 30 under way", every=0.05)
        first.kill()
        killed = time.monotonic()
        local_kube.call(setattr, slow, "count", 0)  # the standby creates at full speed
        # While nobody leads, a worker pod goes: an event no running operator saw, which the new leader must not miss.
        victim = worker_pods(kubectl, "ha")[0]["metadata"]["name"]
        kubectl("delete", "pod", victim, "--wait=false")
        until(lambda: LEADS in second.log_path.read_bytes(), "the standby to lead", timeout=FAILOVER_SECONDS)
        names = exactly(kubectl, "ha", 30, timeout=FAILOVER_SECONDS - (time.monotonic() - killed), hold=0)
        took = time.monotonic() - killed
        assert took < FAILOVER_SECONDS, f"the standby finished the scale {took:.1f}s after the kill"
        exactly(kubectl, "ha", 30, hold=3)  # no late duplicates either
        assert len(set(names)) == 30 and victim not in names
        until(lambda: status(kubectl, "daskworkergroup", "ha-default").get("replicas") == 30,
              "the worker group's status to say 30")
        spec = lease(kubectl, name)
        assert spec["holderIdentity"] != holder and spec["leaseTransitions"] == 1, spec
        assert 'dask_kube_operator_leader 1.0' in second.metrics()
        assert not orphans(kubectl)
        print(f"failover: the standby finished the scale {took:.1f}s after the leader was killed")

        second.stop()  # SIGTERM: a clean stop hands the Lease back at once
        assert lease(kubectl, name).get("holderIdentity") in (None, "")
        offset = first.log_path.stat().st_size
        first.start()  # a returning replica leads at once: the Lease was handed back, not left to lapse
        assert b"taking it over" not in first.log_path.read_bytes()[offset:]
        assert lease(kubectl, name)["leaseTransitions"] == 2
        kubectl("scale", "daskcluster", "ha", "--replicas=2")
        exactly(kubectl, "ha", 2)
        second.start()  # a standby again, stopped as Kubernetes stops a pod: at once, and cleanly
        standby = second.proc
        second.stop()
        assert standby is not None and standby.returncode == 0
        assert lease(kubectl, name)["holderIdentity"] != "" and first.proc and first.proc.poll() is None
    finally:
        if slow is not None:
            local_kube.call(setattr, slow, "count", 0)
        for replica in (first, second):
            replica.stop()
        operator.start()
