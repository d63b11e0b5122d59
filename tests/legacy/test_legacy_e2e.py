"""Legacy mode end to end: the worker-spec.yml of the old docs, on a LocalKube whose old image has old scripts.

Current distributed no longer installs `dask-scheduler` / `dask-worker`; the module fixture writes two small
scripts standing in for them and maps the old image onto that directory, as the image would on a real cluster.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.node.images import ImageMapping
from localkube.testing import api_request

from dask_kube import naming
from dask_kube.legacy import KubeCluster

pytestmark = pytest.mark.e2e

OLD_IMAGE = "ghcr.io/dask/dask:2023.1.0"

# The shape of the old docs' worker-spec.yml, with limits small enough for a laptop.
WORKER_SPEC = f"""\
kind: Pod
metadata:
  labels:
    foo: bar
spec:
  restartPolicy: Never
  containers:
  - image: {OLD_IMAGE}
    imagePullPolicy: IfNotPresent
    args: [dask-worker, --nthreads, '2', --no-dashboard, --memory-limit, 1GB, --death-timeout, '{{death}}']
    name: dask
    env:
      - name: EXTRA_PIP_PACKAGES
        value: s3fs
    resources:
      limits:
        cpu: "2"
        memory: 1G
      requests:
        cpu: "2"
        memory: 1G
"""


def _write_old_scripts(directory: Path) -> Path:
    for program, module in (("dask-scheduler", "dask_scheduler"), ("dask-worker", "dask_worker")):
        path = directory / program
        path.write_text(f'#!/bin/sh\nexec python -m distributed.cli.{module} "$@"\n')
        path.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def old_image_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedLocalKube]:
    bin_dir = _write_old_scripts(tmp_path_factory.mktemp("old-dask-image"))
    with LocalKube.in_thread(image_map=[ImageMapping("ghcr.io/dask/dask:2023.*", path=(str(bin_dir),))]) as lk:
        yield lk


def _api(lk: ThreadedLocalKube, method: str, path: str, body: Any = None) -> Any:
    code, out = api_request(lk.kubeconfig, method, path, body)
    assert code < 400, out
    return out


@pytest.fixture
def ns(old_image_kube: ThreadedLocalKube, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("KUBECONFIG", str(old_image_kube.kubeconfig))
    name = f"legacy-{uuid.uuid4().hex[:8]}"
    _api(old_image_kube, "POST", "/api/v1/namespaces",
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    _api(old_image_kube, "DELETE", f"/api/v1/namespaces/{name}")


def _items(lk: ThreadedLocalKube, ns: str, plural: str) -> list[dict[str, Any]]:
    return _api(lk, "GET", f"/api/v1/namespaces/{ns}/{plural}")["items"]


def _wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def _spec_file(tmp_path: Path, death: int = 60) -> Path:
    path = tmp_path / "worker-spec.yml"
    path.write_text(WORKER_SPEC.format(death=death))
    return path


def _cluster(lk: ThreadedLocalKube, ns: str, source: Any, **kwargs: Any) -> KubeCluster:
    kwargs.setdefault("dashboard_address", ":0")  # local mode: never fight another test for 8787
    if isinstance(source, dict):
        return KubeCluster.from_dict(source, namespace=ns, kubeconfig=lk.kubeconfig, **kwargs)
    return KubeCluster.from_yaml(source, namespace=ns, kubeconfig=lk.kubeconfig, **kwargs)


def _assert_nothing_left(lk: ThreadedLocalKube, ns: str) -> None:
    assert _items(lk, ns, "pods") == []
    assert _items(lk, ns, "services") == []


def test_remote_scale_to_two_compute_retire_and_close(old_image_kube, ns, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lk = old_image_kube
    with _cluster(lk, ns, str(_spec_file(tmp_path)), deploy_mode="remote") as cluster, \
            Client(cluster, timeout=30) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")  # outside the cluster: a port-forward
        cluster.scale(2)
        client.wait_for_workers(2, timeout=60)
        assert client.submit(sum, range(10)).result(timeout=30) == 45
        assert sorted(client.gather(client.map(lambda x: x * x, range(20)))) == [x * x for x in range(20)]

        pods = {p["metadata"]["name"]: p for p in _items(lk, ns, "pods")}
        scheduler = pods.pop(naming.scheduler_name(cluster.name))
        workers = {w["name"]: w for w in client.scheduler_info()["workers"].values()}
        assert set(pods) == set(workers) == set(cluster.workers)  # one name: spec, Dask worker and Pod
        assert {w["nthreads"] for w in workers.values()} == {2}  # the template's flags win over derived ones
        for pod in pods.values():
            args = pod["spec"]["containers"][0]["args"]
            assert args[0] == "dask-worker" and args[-2:] == ["--name", pod["metadata"]["name"]]
            assert pod["metadata"]["labels"]["foo"] == "bar"
            assert pod["metadata"]["ownerReferences"][0]["uid"] == scheduler["metadata"]["uid"]
        [service] = _items(lk, ns, "services")
        assert service["metadata"]["ownerReferences"][0]["uid"] == scheduler["metadata"]["uid"]
        assert scheduler["spec"]["containers"][0]["args"][0] == "dask-scheduler"

        # Data that exists nowhere else survives the scale-down: the worker is retired before its pod goes.
        futures = [client.scatter(i, workers=[info["id"]]) for i, info in enumerate(workers.values())]
        cluster.scale(1)
        _wait_until(lambda: len(_items(lk, ns, "pods")) == 2 and len(client.scheduler_info()["workers"]) == 1,
                    60, "one worker pod left")
        assert client.gather(futures) == [0, 1]

        logs = cluster.get_logs()
        assert naming.scheduler_name(cluster.name) in logs and set(cluster.workers) <= set(logs)
        assert "Scheduler at" in logs[naming.scheduler_name(cluster.name)]
    _assert_nothing_left(lk, ns)  # close() waited for every pod and the Service to be gone


def test_local_mode_derives_threads_and_memory_from_limits(old_image_kube, ns) -> None:  # type: ignore[no-untyped-def]
    lk = old_image_kube
    template = {"kind": "Pod", "spec": {"restartPolicy": "Never", "containers": [{
        "image": OLD_IMAGE, "args": ["dask-worker", "--no-dashboard"],
        "resources": {"limits": {"cpu": "3", "memory": "1Gi"}}}]}}
    with _cluster(lk, ns, template, deploy_mode="local", n_workers=1) as cluster, \
            Client(cluster, timeout=30) as client:
        assert cluster.scheduler is not None and not hasattr(cluster.scheduler, "pod")  # in this process
        client.wait_for_workers(1, timeout=60)
        [worker] = client.scheduler_info()["workers"].values()
        assert worker["nthreads"] == 3 and worker["memory_limit"] == 2**30
        assert client.submit(lambda: 6 * 7).result(timeout=30) == 42
        [pod] = _items(lk, ns, "pods")
        assert "ownerReferences" not in pod["metadata"]  # no scheduler pod to own it in local mode
        assert set(cluster.get_logs()) >= {"Scheduler", pod["metadata"]["name"]}
    _assert_nothing_left(lk, ns)


def test_adapt_from_zero_to_two_under_load_and_back(old_image_kube, ns, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lk = old_image_kube
    with _spec_file(tmp_path).open() as spec, _cluster(lk, ns, spec, deploy_mode="remote") as cluster, \
            Client(cluster, timeout=30) as client:  # from_yaml also takes an open file
        cluster.adapt(minimum=0, maximum=2, interval="300ms", wait_count=2, target_duration="1s")

        def worker_pods() -> int:
            return sum(1 for p in _items(lk, ns, "pods") if p["metadata"]["labels"].get(naming.COMPONENT_LABEL)
                       == naming.Component.WORKER)

        assert worker_pods() == 0
        futures = client.map(lambda x: time.sleep(0.5) or x, range(40))
        _wait_until(lambda: worker_pods() == 2 and len(client.scheduler_info()["workers"]) == 2, 60,
                    "adapt to scale up to two workers")
        assert sum(client.gather(futures)) == sum(range(40))
        del futures
        _wait_until(lambda: worker_pods() == 0 and not cluster.workers, 60, "adapt to scale back to zero")
    _assert_nothing_left(lk, ns)


# The client in its own process: made to die without a chance to clean up.
_CLIENT = """\
import sys, time
from dask_kube.legacy import KubeCluster
cluster = KubeCluster.from_yaml(sys.argv[1], namespace=sys.argv[2], n_workers=2, orphan_timeout=2)
cluster.wait_for_workers(2, timeout=60)
print("READY", cluster.name, flush=True)
time.sleep(600)
"""


def test_killed_client_leaves_nothing_running(old_image_kube, ns, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lk = old_image_kube
    stderr = (tmp_path / "client.err").open("w")
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, str(_spec_file(tmp_path, death=5)), ns],
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env=dict(os.environ, KUBECONFIG=str(lk.kubeconfig)))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        try:
            line = lines.get(timeout=90)
        except queue.Empty:
            line = ""
        assert line.startswith("READY"), (tmp_path / "client.err").read_text()[-3000:]
        assert len(_items(lk, ns, "pods")) == 3
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        stderr.close()

    def settled() -> list[dict[str, Any]] | None:
        pods = _items(lk, ns, "pods")
        return pods if all(p["status"].get("phase") in ("Succeeded", "Failed") for p in pods) else None

    pods = _wait_until(settled, 60, "every pod of the orphaned cluster to end")
    assert len(pods) == 3
    # Nothing is orphaned either: deleting the scheduler pod takes every other object with it.
    name = line.split()[1]
    _api(lk, "DELETE", f"/api/v1/namespaces/{ns}/pods/{naming.scheduler_name(name)}")
    _wait_until(lambda: not _items(lk, ns, "pods") and not _items(lk, ns, "services"), 60,
                "garbage collection of the worker pods and the Service")
