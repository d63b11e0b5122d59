"""TLS without a server: certificate generation, the Secret's layout, the env the pods get, `security=`."""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import ipaddress
import ssl

import dask.config
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError
from distributed.comm import connect, listen
from distributed.security import Security
from localkube.apiserver import schema

from dask_kube import KubeCluster, naming, specs, tls
from dask_kube.cluster import options
from dask_kube.errors import SpecError
from dask_kube.operator import crd_schemas
from tests.tlsprobe import refusal_without_client_cert

DNS = ["demo-scheduler", "demo-scheduler.ns", "demo-scheduler.ns.svc", "demo-scheduler.ns.svc.example.org"]


@pytest.fixture(scope="module")
def certs() -> tls.ClusterCertificates:
    return tls.generate("demo", "ns", "example.org")


def _tls_cluster(**tls_fields: object) -> dict:
    obj = specs.make_cluster_spec("demo", n_workers=1, tls=specs.tls_spec(**tls_fields))  # type: ignore[arg-type]
    obj["metadata"].update(namespace="ns", uid="u-1", labels={"team": "a"})
    return obj


def test_the_chain_verifies_for_every_service_name_and_localhost(certs: tls.ClusterCertificates) -> None:
    ca = x509.load_pem_x509_certificate(certs.ca.encode())
    leaf = x509.load_pem_x509_certificate(certs.cert.encode())
    store = Store([ca])
    for name in [*DNS, "localhost"]:
        chain = PolicyBuilder().store(store).build_server_verifier(DNSName(name)).verify(leaf, [])
        assert chain[-1] == ca
    PolicyBuilder().store(store).build_server_verifier(IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(leaf, [])
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(DNSName("other-scheduler.ns.svc")).verify(leaf, [])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [*DNS, "localhost"]
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_before_utc <= dt.datetime.now(dt.UTC) < leaf.not_valid_after_utc


def test_each_cluster_gets_its_own_ca(certs: tls.ClusterCertificates) -> None:
    other = tls.generate("demo", "ns", "example.org")
    assert other.ca != certs.ca and other.key != certs.key
    leaf = x509.load_pem_x509_certificate(other.cert.encode())
    with pytest.raises(VerificationError):  # another CA does not vouch for it
        PolicyBuilder().store(Store([x509.load_pem_x509_certificate(certs.ca.encode())])).build_server_verifier(
            DNSName(DNS[0])).verify(leaf, [])


def test_the_secret_holds_three_keys_and_no_ca_key(certs: tls.ClusterCertificates) -> None:
    secret = specs.tls_secret(_tls_cluster(), certs.secret_data())
    assert secret["metadata"]["name"] == "demo-tls" == naming.tls_secret_name("demo")
    assert secret["type"] == "kubernetes.io/tls" and secret["immutable"] is True
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert secret["metadata"]["labels"] == {"team": "a", naming.CLUSTER_LABEL: "demo"}
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert sum(text.count("PRIVATE KEY-----") for text in decoded.values()) == 2  # BEGIN and END of tls.key only
    assert "PRIVATE KEY" not in decoded["ca.crt"] + decoded["tls.crt"]
    assert tls.from_secret_data(secret["data"], "demo-tls") == certs


@pytest.mark.parametrize("mutate,fragment", [
    (lambda d: d.pop("ca.crt"), "no key 'ca.crt'"),
    (lambda d: d.update({"tls.crt": base64.b64encode(b"not a certificate").decode()}), "'tls.crt' is not a PEM"),
    (lambda d: d.update({"tls.key": "%%%"}), "'tls.key' is not base64"),
    (lambda d: d.update({"tls.key": d["tls.crt"]}), "'tls.key' is not an unencrypted PEM private key"),
], ids=["missing", "not-pem", "not-base64", "cert-for-key"])
def test_a_bad_secret_is_named_without_its_content(certs: tls.ClusterCertificates, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    data = certs.secret_data()
    mutate(data)
    with pytest.raises(tls.TLSSecretError) as err:
        tls.from_secret_data(data, "mine")
    assert fragment in str(err.value) and "mine" in str(err.value)
    assert "-----" not in str(err.value) and "MII" not in str(err.value)
    assert "PEM redacted" in repr(certs) and certs.key not in repr(certs)


def test_pods_of_a_tls_cluster_read_the_secret_and_speak_tls() -> None:
    cluster = _tls_cluster()
    sched = specs.scheduler_pod(cluster)
    group = specs.default_worker_group(cluster)
    group["metadata"].update(namespace="ns", uid="g-1")
    worker = specs.worker_pod(group, "demo", tls_secret=specs.tls_secret_of(cluster))
    for pod in (sched, worker):
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env[naming.TLS_CA_ENV]["valueFrom"] == {"secretKeyRef": {"name": "demo-tls", "key": "ca.crt"}}
        for cert_var, key_var in naming.TLS_ROLE_ENV.values():
            assert env[cert_var]["valueFrom"]["secretKeyRef"] == {"name": "demo-tls", "key": "tls.crt"}
            assert env[key_var]["valueFrom"]["secretKeyRef"] == {"name": "demo-tls", "key": "tls.key"}
        assert env[naming.TLS_REQUIRE_ENCRYPTION_ENV]["value"] == "True"
        assert not any("BEGIN" in str(e) for e in env.values())
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env[naming.SCHEDULER_ADDRESS_ENV] == "tls://demo-scheduler.ns.svc.cluster.local:8786"
    # A Secret the user brings is referred to by its name.
    assert specs.tls_secret_of(_tls_cluster(secret_name="from-cert-manager")) == "from-cert-manager"


def test_plain_clusters_and_jobs_are_unchanged() -> None:
    plain = specs.make_cluster_spec("demo", n_workers=1)
    assert "tls" not in plain["spec"] and specs.tls_secret_of(plain) is None
    plain["metadata"].update(namespace="ns", uid="u-1")
    env = {e["name"] for e in specs.scheduler_pod(plain)["spec"]["containers"][0]["env"]}
    assert not any(n.startswith("DASK_DISTRIBUTED__COMM") for n in env)
    disabled = _tls_cluster(enabled=False)
    assert specs.tls_secret_of(disabled) is None


def test_a_job_runner_of_a_tls_cluster_speaks_tls() -> None:
    cluster = specs.make_cluster_spec("x", n_workers=1, tls=specs.tls_spec())
    job = {"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB,
           "metadata": {"name": "sum", "namespace": "ns", "uid": "j-1"},
           "spec": {"cluster": {"spec": cluster["spec"]},
                    "job": {"spec": {"containers": [{"name": "job", "image": "i", "args": ["python", "-c", "1"]}]}}}}
    runner = specs.job_runner_pod(job)
    env = {e["name"]: e for e in runner["spec"]["containers"][0]["env"]}
    assert env[naming.SCHEDULER_ADDRESS_ENV]["value"] == "tls://sum-scheduler.ns.svc.cluster.local:8786"
    assert env[naming.TLS_ROLE_ENV["client"][1]]["valueFrom"]["secretKeyRef"] == {"name": "sum-tls", "key": "tls.key"}
    assert specs.job_cluster(job)["spec"]["tls"] == {"enabled": True}


def test_the_crd_accepts_tls_and_rejects_a_bad_secret_name() -> None:
    by_file = crd_schemas.crds()
    cluster_schema = by_file["daskcluster.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    ok = schema.apply_structural_schema(_tls_cluster(secret_name="my.secret-1"), cluster_schema)
    assert ok.causes == [] and ok.pruned == []
    bad = schema.apply_structural_schema(_tls_cluster(secret_name="Not_A_Name"), cluster_schema)
    assert any("spec.tls.secretName" in str(c) for c in bad.causes)
    job_spec = by_file["daskjob.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "tls" in job_spec["properties"]["cluster"]["properties"]["spec"]["properties"]


def test_dask_config_keeps_a_pem_from_the_environment_as_a_string(certs: tls.ClusterCertificates) -> None:
    """What a pod's env turns into: `distributed.comm.tls.*` strings that distributed loads as PEM content."""
    env = {naming.TLS_CA_ENV: certs.ca, naming.TLS_REQUIRE_ENCRYPTION_ENV: "True"}
    for cert_var, key_var in naming.TLS_ROLE_ENV.values():
        env.update({cert_var: certs.cert, key_var: certs.key})
    merged = dask.config.update(copy.deepcopy(dask.config.config), dask.config.collect_env(env))
    with dask.config.set({"distributed": merged["distributed"]}):
        assert dask.config.get("distributed.comm.tls.ca-file") == certs.ca
        assert dask.config.get("distributed.comm.tls.worker.key") == certs.key
        security = Security()
        assert security.require_encryption is True
        assert isinstance(security.get_listen_args("scheduler")["ssl_context"], ssl.SSLContext)


async def test_mutual_tls_with_the_generated_certificates(certs: tls.ClusterCertificates) -> None:
    """Real distributed comms: the cluster's certificate is accepted; a foreign CA's, a plain client and a client
    without a certificate are not."""
    server_security = Security(require_encryption=True, tls_ca_file=certs.ca, tls_scheduler_cert=certs.cert,
                               tls_scheduler_key=certs.key)
    received: list[object] = []

    async def handle(comm) -> None:  # type: ignore[no-untyped-def]
        received.append(await comm.read())
        await comm.write("pong")
        await comm.close()

    listener = listen("tls://127.0.0.1:0", handle, **server_security.get_listen_args("scheduler"))
    await listener.start()
    try:
        comm = await connect(listener.contact_address, timeout=5, **certs.security().get_connection_args("client"))
        await comm.write("ping")
        assert await comm.read() == "pong" and received == ["ping"]
        await comm.close()
        foreign = Security.temporary()
        with pytest.raises((OSError, TimeoutError)):
            comm = await connect(listener.contact_address, timeout=2, **foreign.get_connection_args("client"))
            await comm.write("ping")
            await asyncio.wait_for(comm.read(), 2)
        with pytest.raises((OSError, TimeoutError)):
            comm = await connect(listener.contact_address.replace("tls://", "tcp://"), timeout=2)
            await comm.write("ping")
            await asyncio.wait_for(comm.read(), 2)
        host, port = listener.contact_address.removeprefix("tls://").rsplit(":", 1)
        refusal = await asyncio.to_thread(refusal_without_client_cert, host, int(port), certs.ca)
        assert refusal  # an SSL alert or EOF: never data, never a wait
        assert received == ["ping"]
    finally:
        listener.stop()


@pytest.mark.parametrize("value,expected", [
    (None, None), (False, None), ("false", None), (True, {"enabled": True}), ("true", {"enabled": True}),
    ("my-certs", {"enabled": True, "secretName": "my-certs"}),
])
def test_security_argument(value: object, expected: dict | None) -> None:
    assert options.resolve_security(value) == expected
    opts = options.resolve(name="demo", security=value)  # type: ignore[arg-type]
    assert opts.manifest()["spec"].get("tls") == expected


def test_security_from_config_and_on_a_custom_spec() -> None:
    with dask.config.set({"kubernetes.security": True}):
        assert options.resolve(name="demo").manifest()["spec"]["tls"] == {"enabled": True}
    custom = specs.make_cluster_spec("c", n_workers=1)
    assert options.resolve(custom_cluster_spec=custom, security=True).manifest()["spec"]["tls"] == {"enabled": True}
    assert "tls" not in options.resolve(custom_cluster_spec=custom).manifest()["spec"]


@pytest.mark.parametrize("value,fragment", [
    (Security(), "Security object cannot be used"), ("Bad_Name", "not a valid Secret name"), (3, "must be True"),
])
def test_bad_security_values_fail_before_any_api_call(value: object, fragment: str, monkeypatch,  # type: ignore[no-untyped-def]
                                                      tmp_path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    with pytest.raises(SpecError) as err:
        KubeCluster(name="ok", security=value)  # type: ignore[arg-type]
    assert err.value.field == "security" and fragment in str(err.value)
