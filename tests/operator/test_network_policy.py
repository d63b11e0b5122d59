"""spec.networkPolicy on LocalKube with the real operator: the NetworkPolicy appears with the cluster, goes when the
field is turned off, comes back when it is turned on, and is garbage-collected with the cluster. (LocalKube stores
NetworkPolicies but does not enforce them: what is tested is the object and its lifecycle.)"""

from __future__ import annotations

import json

import pytest
from localkube.testing import until

from dask_kube import specs

pytestmark = pytest.mark.e2e


def test_network_policy_follows_the_spec_and_the_cluster(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    manifest = specs.make_cluster_spec("guarded", image="any", n_workers=0, network_policy=True)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def policy() -> dict | None:
        proc = kubectl("get", "networkpolicy", "guarded-scheduler", "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def status() -> dict:
        return json.loads(kubectl("get", "daskcluster", "guarded", "-o", "json").stdout).get("status") or {}

    created = until(policy, "the NetworkPolicy", 30)
    uid = json.loads(kubectl("get", "daskcluster", "guarded", "-o", "json").stdout)["metadata"]["uid"]
    assert [r["uid"] for r in created["metadata"]["ownerReferences"]] == [uid]
    assert created["spec"] == specs.scheduler_network_policy({**manifest, "metadata": {
        "name": "guarded", "namespace": namespace, "uid": uid}})["spec"]
    until(lambda: status().get("networkPolicyName") == "guarded-scheduler", "the status to name it", 30)

    kubectl("patch", "daskcluster", "guarded", "--type=merge", "-p", '{"spec": {"networkPolicy": {"enabled": false}}}')
    until(lambda: policy() is None, "the NetworkPolicy deleted once turned off", 30)
    until(lambda: "networkPolicyName" not in status(), "the status to forget it", 30)

    kubectl("patch", "daskcluster", "guarded", "--type=merge", "-p", '{"spec": {"networkPolicy": {"enabled": true}}}')
    until(policy, "the NetworkPolicy back once turned on", 30)

    kubectl("delete", "daskcluster", "guarded", "--wait=true", timeout=90)
    until(lambda: policy() is None, "the NetworkPolicy garbage-collected with its cluster", 30)
