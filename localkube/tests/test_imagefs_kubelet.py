"""Image directories in the kubelet: each container's own fresh copy, with paths mapped in its command, exec,
exec probes and workingDir; the copies go with the pod and nothing reaches the image path on the host.

In-process LocalKube and kubelet (test_kubelet.py's helpers), with a catalog image of the test's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localkube.node.catalog import CATALOG, CatalogEntry
from localkube.node.imagefs import ENV_VAR
from localkube.node.images import ImageMapping
from tests.test_kubelet import Cluster, cluster, exec_frames, wait_for

pytestmark = pytest.mark.timeout(120)

SITE = "/localkube-test-image/site"  # the image's directory: must never appear on the host
IMAGE = "example.com/test/site:1"


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[CatalogEntry, ...]:
    source = tmp_path / "image-site"
    source.mkdir()
    (source / "hello.txt").write_text("hello from the image\n")
    entry = CatalogEntry("site", ("example.com/test/site",), "a test image with a directory",
                         cmd=("sleep", "60"), directories={SITE: source})
    return (*CATALOG, entry)


def _on_host(path: str) -> bool:
    return Path(path).exists()


def _container_dir(c: Cluster, pod: str) -> Path:
    uid = c.pod(pod)["metadata"]["uid"]  # type: ignore[index]
    return c.kubelet.workers[uid].dir


async def _run(c: Cluster, pod: str, *command: str) -> tuple[str, dict[str, object]]:
    frames = await exec_frames(c.kube.http_url, pod, list(command))
    return frames.get(1, b"").decode(), json.loads(frames[3])


async def test_command_exec_and_working_dir_use_the_containers_own_copy(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    async with cluster(tmp_path, image_catalog=catalog) as c:
        c.create("one", [{"name": "web", "image": IMAGE}])
        c.create("two", [{"name": "web", "image": IMAGE, "workingDir": SITE + "/work"}])
        c.create("cat", [{"name": "c", "image": IMAGE, "command": ["cat", f"{SITE}/hello.txt"]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.status("cat").get("phase") == "Succeeded", what="cat Succeeded")
        assert await c.log("cat") == (200, b"hello from the image\n")
        for pod in ("one", "two"):
            await wait_for(lambda p=pod: c.status(p).get("phase") == "Running", what=f"{pod} Running")

        out, status = await _run(c, "one", "dd", "if=/dev/zero", f"of={SITE}/foo.dat", "bs=1024", "count=3")
        assert status["status"] == "Success", status
        out, _ = await _run(c, "one", "ls", SITE)
        assert out.split() == ["foo.dat", "hello.txt"]
        out, _ = await _run(c, "one", "stat", "-c", "%s", f"{SITE}/foo.dat")
        assert out == "3072\n"
        copy = _container_dir(c, "one") / "containers" / "web" / "rootfs" / SITE.lstrip("/")
        assert (copy / "foo.dat").stat().st_size == 3072

        out, _ = await _run(c, "two", "ls", SITE)  # another pod of the same image: its own copy
        assert out.split() == ["hello.txt", "work"]
        out, _ = await _run(c, "two", "pwd")
        two_copy = _container_dir(c, "two") / "containers" / "web" / "rootfs" / SITE.lstrip("/")
        assert out == f"{two_copy}/work\n"
        out, _ = await _run(c, "two", "sh", "-c", f"echo ${ENV_VAR}")
        assert json.loads(out) == {SITE: str(two_copy)}

        directory = _container_dir(c, "one")
        c.core.delete(c.pods, "default", "one")
        await wait_for(lambda: c.pod("one") is None and not directory.exists(), within=30, what="one and its copy gone")
    assert not _on_host(SITE) and not _on_host(str(Path(SITE).parent))


async def test_exec_probes_see_the_copy(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    probe = {"exec": {"command": ["test", "-f", f"{SITE}/ready"]}, "periodSeconds": 0.1, "failureThreshold": 1}
    async with cluster(tmp_path, image_catalog=catalog) as c:
        c.create("probed", [{"name": "c", "image": IMAGE, "readinessProbe": probe}])
        await wait_for(lambda: c.status("probed").get("phase") == "Running", what="Running")
        assert c.condition("probed", "Ready") == "False"
        _, status = await _run(c, "probed", "touch", f"{SITE}/ready")
        assert status["status"] == "Success"
        await wait_for(lambda: c.condition("probed", "Ready") == "True", what="Ready once the file is in the copy")


async def test_each_container_start_gets_a_fresh_copy(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    # `$0` of the script is an argument, so it is mapped; the script's text is not.
    script = 'ls "$0"; touch "$0/left-behind"; exit 1'
    async with cluster(tmp_path, image_catalog=catalog, backoff_base=0.05, backoff_cap=0.1) as c:
        c.create("again", [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script, SITE]}],
                 restartPolicy="OnFailure")
        await wait_for(lambda: c.container("again").get("restartCount", 0) >= 2, what="two restarts")
        status, previous = await c.log("again", previous="true")
        assert status == 200 and previous.split() == [b"hello.txt"]


async def test_a_users_image_mapping_can_declare_directories(tmp_path: Path) -> None:
    source = tmp_path / "mine"
    source.mkdir()
    (source / "data.txt").write_text("the user's image\n")
    mapping = ImageMapping("example.com/mine:*", cmd=("cat", f"{SITE}/data.txt"), directories={SITE: str(source)})
    async with cluster(tmp_path, image_map=[mapping]) as c:
        c.create("mine", [{"name": "c", "image": "example.com/mine:1"}], restartPolicy="Never")
        await wait_for(lambda: c.status("mine").get("phase") == "Succeeded", what="mine Succeeded")
        assert await c.log("mine") == (200, b"the user's image\n")
