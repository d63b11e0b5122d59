"""KubeCluster(security=True) on LocalKube with the real operator: TLS end to end, and from_name finds it."""

from __future__ import annotations

import json

import pytest
import yaml
from distributed import Client
from localkube.testing import until

from dask_kube import KubeCluster, naming, specs
from dask_kube.errors import SpecError

pytestmark = pytest.mark.e2e


def test_security_true_computes_over_tls_and_from_name_reconnects_with_tls(operator, namespace, kubectl) -> None:  # type: ignore[no-untyped-def]
    cluster = KubeCluster(name="tlsdemo", namespace=namespace, n_workers=1, image="any", quiet=True, security=True)
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")  # TLS through the port-forward
        assert cluster.security is not None and cluster.security.require_encryption
        spec = json.loads(kubectl("get", "daskcluster", "tlsdemo", "-o", "json").stdout)["spec"]
        assert spec["tls"] == {"enabled": True}
        cluster.wait_for_workers(1, timeout=60)
        with Client(cluster) as client:  # distributed takes cluster.security
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
            assert all(a.startswith("tls://") for a in client.scheduler_info()["workers"])
        with pytest.raises(OSError):
            Client(cluster.scheduler_address.replace("tls://", "tcp://"), timeout=3)

        again = KubeCluster.from_name("tlsdemo", namespace=namespace, quiet=True)  # no security= given
        try:
            assert again.scheduler_address.startswith("tls://") and again.security is not None
            with Client(again) as client:
                assert client.submit(lambda: 42).result(timeout=30) == 42
        finally:
            again.close()

        # Asked for TLS, found a plain cluster of that name: an error, not a silently plain connection.
        kubectl("apply", "-f", "-", input=yaml.safe_dump(specs.make_cluster_spec("tlsdemo-plain", n_workers=0)))
        with pytest.raises(SpecError, match="exists without TLS"):
            KubeCluster(name="tlsdemo-plain", namespace=namespace, quiet=True, security=True)
    finally:
        cluster.close()
        kubectl("delete", "daskcluster", "tlsdemo-plain", "--ignore-not-found", "--wait=false")
    until(lambda: kubectl("get", "secret", naming.tls_secret_name("tlsdemo"), check=False).returncode != 0,
          "the cluster's Secret deleted with it")
