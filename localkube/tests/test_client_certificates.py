"""x509 client authentication: the admin kubeconfig's client certificate (as kubeadm and kind write it), other
users' certificates signed by the cluster's CA, and certificates the cluster did not sign."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkube.apiserver.certs import TlsFiles, ensure
from localkube.pytest_plugin import KubeHandle

pytestmark = pytest.mark.localkube_only


def _kubeconfig(kube: KubeHandle, path: Path, *, cert: bytes, key: bytes) -> Path:
    """The session kubeconfig with its user replaced by this client certificate alone (no token)."""
    doc = yaml.safe_load(kube.kubeconfig.read_text())
    doc["users"][0]["user"] = {"client-certificate-data": base64.b64encode(cert).decode(),
                               "client-key-data": base64.b64encode(key).decode()}
    path.write_text(yaml.safe_dump(doc))
    return path


def _kubectl(kube: KubeHandle, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(kube.cache_dir))
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)


def _tls(kube: KubeHandle) -> TlsFiles:
    assert kube.local is not None
    return kube.local.kube.tls


def test_the_admin_kubeconfig_holds_a_client_certificate_only_its_owner_reads(kube: KubeHandle) -> None:
    assert stat.S_IMODE(kube.kubeconfig.stat().st_mode) == 0o600
    user: dict[str, Any] = yaml.safe_load(kube.kubeconfig.read_text())["users"][0]["user"]
    assert {"client-certificate-data", "client-key-data", "token"} <= set(user)


def test_the_admin_certificate_alone_is_kubernetes_admin(kube: KubeHandle, tmp_path: Path) -> None:
    user = yaml.safe_load(kube.kubeconfig.read_text())["users"][0]["user"]
    config = _kubeconfig(kube, tmp_path / "cert-only.yaml", cert=base64.b64decode(user["client-certificate-data"]),
                         key=base64.b64decode(user["client-key-data"]))
    whoami = _kubectl(kube, config, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "kubernetes-admin"
    assert info["groups"] == ["system:masters", "system:authenticated"]
    assert _kubectl(kube, config, "get", "namespaces", "-o", "name").returncode == 0


def test_a_certificate_the_cluster_signed_is_that_user_under_rbac(kube: KubeHandle, tmp_path: Path,
                                                                   namespace: str) -> None:
    cert, key = _tls(kube).client_certificate("jane", ("developers",))
    config = _kubeconfig(kube, tmp_path / "jane.yaml", cert=cert, key=key)
    info = json.loads(_kubectl(kube, config, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert (info["username"], info["groups"]) == ("jane", ["developers", "system:authenticated"])
    refused = _kubectl(kube, config, "get", "pods", "-n", namespace)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f'Error from server (Forbidden): pods is forbidden: User "jane" cannot list '
                                      f'resource "pods" in API group "" in the namespace "{namespace}"')
    kube.kubectl("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=developers", "-n", namespace)
    assert _kubectl(kube, config, "get", "pods", "-n", namespace).returncode == 0


def test_a_certificate_from_another_authority_is_refused(kube: KubeHandle, tmp_path: Path) -> None:
    stranger = ensure(tmp_path / "other-cluster")  # a CA of its own, which this cluster does not trust
    cert, key = stranger.client_certificate("kubernetes-admin", ("system:masters",))
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    context = ssl.create_default_context(cadata=_tls(kube).ca_pem().decode())
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    with (pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionResetError)),
          urllib.request.urlopen(kube.url + "/api/v1/namespaces", timeout=10, context=context) as resp):
        resp.read()
