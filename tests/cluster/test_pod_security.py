"""A namespace that enforces the `restricted` Pod Security Standard refuses a root pod and runs our clusters: one
whose spec the client built, and one written by hand without any securityContext, which the operator completes.
A cluster asked to run as root there ends in `Error` with the API server's refusal."""

from __future__ import annotations

import json

import pytest

from dask_kube import KubeCluster, SpecError, specs
from dask_kube.legacy import pods

pytestmark = pytest.mark.e2e


def test_restricted_namespace_refuses_root_and_runs_ours(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    root = pods.make_pod_spec("any", run_as_root=True)
    root["metadata"]["name"] = "root"
    refused = kubectl("create", "-f", "-", input=json.dumps(root), check=False)
    assert refused.returncode != 0
    assert 'pods "root" is forbidden: violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
    assert "runAsUser=0" in refused.stderr

    # No securityContext anywhere, as a DaskCluster written for dask-kubernetes: the operator adds the defaults.
    hand_written = specs.make_cluster_spec("handmade", image="any", n_workers=1)
    for block in (hand_written["spec"]["scheduler"], hand_written["spec"]["worker"]):
        del block["spec"]["securityContext"]
        del block["spec"]["containers"][0]["securityContext"]

    with KubeCluster(name="ours", namespace=namespace, image="any", n_workers=1, quiet=True) as built, \
            KubeCluster(namespace=namespace, custom_cluster_spec=hand_written, quiet=True) as completed:
        built.wait_for_workers(1, timeout=60)
        completed.wait_for_workers(1, timeout=60)
        listed = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
        by_name = {p["metadata"]["name"]: p for p in listed}
        assert "root" not in by_name
        assert len(by_name) == 4, sorted(by_name)  # two schedulers and two workers
        for pod in by_name.values():
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
            assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    # A root cluster: the operator's dry run meets the refusal and reports it on the DaskCluster, in the API
    # server's words; the client raises it, and leaves nothing behind.
    with pytest.raises(SpecError, match='violates PodSecurity "restricted:latest"'):
        KubeCluster(name="rooted", namespace=namespace, image="any", run_as_root=True, quiet=True)
    assert "rooted" not in kubectl("get", "daskclusters", "-o", "name").stdout
