"""TLS clusters on the session LocalKube: the operator's certificates, real dask processes speaking tls://."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from distributed import Client
from distributed.security import Security
from kr8s.objects import Pod
from localkube.testing import free_port, until

from dask_kube import naming, specs, tls
from tests.paths import EXAMPLE_MANIFESTS
from tests.tlsprobe import refusal_without_client_cert

pytestmark = pytest.mark.e2e
NAME = "tls-dask-cluster"  # examples/manifests/tls-dask-cluster.yaml
SECRET = naming.tls_secret_name(NAME)


def _get(kubectl, kind: str, name: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    out = kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _worker_pods(kubectl, cluster: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    items = json.loads(kubectl("get", "pods", "-l", naming.selector_string(naming.worker_selector(cluster)),
                               "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _running(kubectl, name: str, ready: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    def check() -> dict[str, Any] | None:
        obj = _get(kubectl, "daskcluster", name)
        status = obj.get("status") or {}
        return obj if status.get("phase") == "Running" and status.get("readyReplicas") == ready else None
    return until(check, f"{name} Running with {ready} workers", 90,
                 explain=lambda: json.dumps(_get(kubectl, "daskcluster", name).get("status"), indent=1))


def _pem_fragments(certs: tls.ClusterCertificates) -> list[str]:
    """Lines that would betray a PEM: its armour and a body line of each part."""
    return ["-----BEGIN", *(text.splitlines()[1] for text in (certs.ca, certs.cert, certs.key))]


def test_a_tls_cluster_refuses_plain_connections_and_the_operator_still_scales_it(kubectl, operator,  # type: ignore[no-untyped-def]
                                                                                   namespace) -> None:
    kubectl("apply", "-f", str(EXAMPLE_MANIFESTS / "tls-dask-cluster.yaml"))  # NAME, with two workers
    cluster = _running(kubectl, NAME, ready=2)  # workers joined over TLS, counted by the operator over TLS
    assert cluster["status"]["tlsSecretName"] == SECRET

    secret = _get(kubectl, "secret", SECRET)
    assert secret["type"] == "kubernetes.io/tls" and sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == cluster["metadata"]["uid"]
    assert secret["metadata"]["labels"][naming.CLUSTER_LABEL] == NAME
    certs = tls.from_secret_data(secret["data"], SECRET)

    for pod in [_get(kubectl, "pod", naming.scheduler_name(NAME)), *_worker_pods(kubectl, NAME)]:
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env[naming.TLS_CA_ENV]["valueFrom"]["secretKeyRef"]["name"] == SECRET
        assert not any("BEGIN" in json.dumps(e) for e in env.values())
    worker = _worker_pods(kubectl, NAME)[0]["spec"]["containers"][0]
    worker_env = {e["name"]: e.get("value") for e in worker["env"]}
    assert worker_env[naming.SCHEDULER_ADDRESS_ENV].startswith(f"tls://{naming.scheduler_name(NAME)}.")

    pod = Pod.get(naming.scheduler_name(NAME), namespace=namespace)
    with pod.portforward(naming.SCHEDULER_PORT, local_port=free_port()) as port:
        with Client(f"tls://127.0.0.1:{port}", security=certs.security(), timeout=30) as client:
            info = client.scheduler_info()
            assert info["address"].startswith("tls://")
            assert all(addr.startswith("tls://") for addr in info["workers"])
            futures = client.map(lambda i: bytes(50_000) + str(i).encode(), range(20))
            client.gather(futures)
            assert len({w for ws in client.who_has(futures).values() for w in ws}) == 2

            # Scale down: the operator retires a worker through the scheduler's TLS RPC, and no data is lost.
            kubectl("scale", "daskcluster", NAME, "--replicas=1")
            until(lambda: len(_worker_pods(kubectl, NAME)) == 1, "scale down to one worker pod", 60)
            _running(kubectl, NAME, ready=1)
            assert [r[50_000:] for r in client.gather(futures)] == [str(i).encode() for i in range(20)]

        with pytest.raises(OSError):
            Client(f"tcp://127.0.0.1:{port}", timeout=3)  # plain TCP: the scheduler drops it at its handshake
        with pytest.raises(OSError):
            Client(f"tls://127.0.0.1:{port}", security=Security.temporary(), timeout=3)  # another CA's certificate
        assert refusal_without_client_cert("127.0.0.1", port, certs.ca)  # the right CA, but no certificate

    events = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"].startswith(NAME)}
    assert {"TLSSecretCreated", "WorkersRetired"} <= reasons
    logs = [kubectl("logs", naming.scheduler_name(NAME)).stdout]
    logs += [kubectl("logs", p["metadata"]["name"]).stdout for p in _worker_pods(kubectl, NAME)]
    assert "tls://" in logs[0]
    said = {"operator log": operator.log_path.read_text(errors="replace"), "events": json.dumps(events),
            "status": json.dumps(_get(kubectl, "daskcluster", NAME)["status"]), "pod logs": "\n".join(logs)}
    for where, text in said.items():
        for fragment in _pem_fragments(certs):
            assert fragment not in text, f"a PEM fragment in the {where}"
        assert base64.b64encode(certs.key.encode()).decode()[:40] not in text, f"the key's base64 in the {where}"

    kubectl("delete", "daskcluster", NAME, "--wait=false")
    until(lambda: kubectl("get", "secret", SECRET, check=False).returncode != 0,
          "the Secret garbage-collected with its cluster", 60)


def test_a_cluster_naming_a_missing_secret_waits_and_says_why(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    body = specs.make_cluster_spec("byo", n_workers=0, tls=specs.tls_spec(secret_name="byo-certs"))
    kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def waiting() -> dict[str, Any] | None:
        status = _get(kubectl, "daskcluster", "byo").get("status") or {}
        cond = next((c for c in status.get("conditions") or () if c["type"] == "SchedulerReady"), {})
        return cond if cond.get("reason") == "TLSSecretInvalid" else None
    cond = until(waiting, "a TLSSecretInvalid condition")
    status = _get(kubectl, "daskcluster", "byo")["status"]
    assert "byo-certs" in cond["message"] and status["phase"] == "Pending" and status["tlsSecretName"] == "byo-certs"
    events = json.loads(kubectl("get", "events", "--field-selector", "reason=TLSSecretInvalid", "-o", "json").stdout)
    assert any(e["type"] == "Warning" and "byo-certs" in e["message"] for e in events["items"])
    assert _get(kubectl, "pod", "byo-scheduler") == {}  # nothing starts without its certificates

    # The Secret appears (as cert-manager would write it): the cluster starts with it, and does not own it.
    certs = tls.generate("byo", namespace)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "byo-certs"}, "data": certs.secret_data()}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))
    _running(kubectl, "byo", ready=0)
    assert _get(kubectl, "secret", "byo-tls") == {}  # nothing generated
    pod = Pod.get("byo-scheduler", namespace=namespace)
    with pod.portforward(naming.SCHEDULER_PORT, local_port=free_port()) as port, \
            Client(f"tls://127.0.0.1:{port}", security=certs.security(), timeout=30) as client:
        assert client.scheduler_info()["address"].startswith("tls://")


@pytest.mark.parametrize("owner", ["earlier", "none"])
def test_a_secret_not_generated_for_this_cluster_is_never_used(kubectl, operator, namespace, owner: str) -> None:  # type: ignore[no-untyped-def]
    """`{name}-tls` left by an earlier owner (a ConfigMap standing for an earlier cluster of the same name that is
    not garbage-collected yet) or by nobody (orphaned by `--cascade=orphan`, or planted): its CA is not this
    cluster's to trust. The cluster waits and says why, and gets a Secret of its own once the old one is gone (with
    its owner, or deleted by the user as the message suggests)."""
    name = f"again-{owner}"
    metadata: dict[str, Any] = {"name": naming.tls_secret_name(name)}
    if owner == "earlier":
        kubectl("create", "configmap", "earlier-owner")
        uid = _get(kubectl, "configmap", "earlier-owner")["metadata"]["uid"]
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "earlier-owner",
                                        "uid": uid, "controller": True}]
    planted = tls.generate(name, namespace)
    kubectl("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Secret",
                                                      "type": "kubernetes.io/tls", "data": planted.secret_data(),
                                                      "metadata": metadata}))
    kubectl("apply", "-f", "-", input=yaml.safe_dump(specs.make_cluster_spec(name, n_workers=0,
                                                                             tls=specs.tls_spec())))

    def waiting() -> dict[str, Any] | None:
        status = _get(kubectl, "daskcluster", name).get("status") or {}
        cond = next((c for c in status.get("conditions") or () if c["type"] == "SchedulerReady"), {})
        return cond if cond.get("reason") == "TLSSecretInvalid" else None
    cond = until(waiting, "a TLSSecretInvalid condition")
    assert "was not generated for this cluster" in cond["message"], cond
    assert _get(kubectl, "pod", naming.scheduler_name(name)) == {}  # nothing runs with a CA someone else may hold

    if owner == "earlier":
        kubectl("delete", "configmap", "earlier-owner")  # its Secret goes with it (garbage collection)
    else:
        kubectl("delete", "secret", naming.tls_secret_name(name))
    cluster = _running(kubectl, name, ready=0)
    secret = _get(kubectl, "secret", naming.tls_secret_name(name))
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [cluster["metadata"]["uid"]]
    assert secret["data"]["ca.crt"] != planted.secret_data()["ca.crt"]
    kubectl("delete", "daskcluster", name)


def test_a_tls_daskjob_runner_computes_over_tls(kubectl, operator, namespace) -> None:  # type: ignore[no-untyped-def]
    job = yaml.safe_load((EXAMPLE_MANIFESTS / "sum-daskjob.yaml").read_text())
    job["metadata"] = {"name": "tls-job"}
    job["spec"]["cluster"]["spec"]["tls"] = specs.tls_spec()
    job["spec"]["cluster"]["spec"]["worker"]["replicas"] = 1
    job["spec"]["job"]["spec"]["containers"][0]["args"] = ["python", "-c", (
        "from dask.distributed import Client\n"
        "client = Client()\n"  # address and certificates both come from the injected environment
        "client.wait_for_workers(1, timeout=120)\n"
        "print('scheduler', client.scheduler.address, 'total', client.submit(sum, [1, 2, 3]).result())\n")]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(job))

    def finished() -> str | None:
        return (_get(kubectl, "daskjob", "tls-job").get("status") or {}).get("jobStatus") in (
            "Successful", "Failed") and _get(kubectl, "daskjob", "tls-job")["status"]["jobStatus"]
    outcome = until(finished, "the TLS job to finish", 120,
                    explain=lambda: kubectl("logs", naming.job_runner_name("tls-job"), check=False).stdout)
    log = kubectl("logs", naming.job_runner_name("tls-job")).stdout
    assert outcome == "Successful", log
    assert "scheduler tls://tls-job-scheduler." in log and "total 6" in log
