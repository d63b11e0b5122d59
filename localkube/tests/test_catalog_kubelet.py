"""The kubelet with the image catalog: unknown images fail to pull as on a real node, known ones run.

In-process LocalKube and kubelet (test_kubelet.py's helpers), with a small back-off base where back-off matters.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localkube.node.images import ImageMapping
from tests.test_kubelet import Cluster, cluster, wait_for
from tests.unit.test_catalog import catches

pytestmark = pytest.mark.timeout(120)

GHOST = "example.com/team/ghost:1"
INTERPRETER = os.path.abspath(sys.executable)
HOST_PYTHON3 = os.path.exists("/usr/local/bin/python3")


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]


def _waiting(c: Cluster, name: str) -> dict[str, Any]:
    return c.container(name).get("state", {}).get("waiting") or {}


def _waiting_history(c: Cluster, name: str) -> list[tuple[float, str, str]]:
    """(moment, reason, message) of each status write that changed the first container's waiting reason."""
    out: list[tuple[float, str, str]] = []
    for moment, event in c.events:
        if event.obj["metadata"]["name"] != name:
            continue
        statuses = (event.obj.get("status") or {}).get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if not out or out[-1][1] != reason:
            out.append((moment, reason, waiting.get("message", "")))
    return out


async def test_an_unknown_image_without_a_command_fails_to_pull_with_back_off(tmp_path: Path) -> None:
    async with cluster(tmp_path, backoff_base=0.4, backoff_cap=0.8) as c:
        c.create("ghost", [{"name": "c", "image": GHOST}])
        await wait_for(lambda: sum(r == "ErrImagePull" for _, r, _ in _waiting_history(c, "ghost")) >= 4,
                       within=30, what="four pull attempts")
        history = [(r, m) for _, r, m in _waiting_history(c, "ghost") if r and r != "ContainerCreating"]
        assert [r for r, _ in history[:4]] == ["ErrImagePull", "ImagePullBackOff", "ErrImagePull",
                                               "ImagePullBackOff"], history
        pull_error = history[0][1]
        assert pull_error.startswith(f'failed to pull and unpack image "{GHOST}"')
        assert "LocalKube runs no images" in pull_error and "images[].pattern" in pull_error
        assert history[1][1] == f'Back-off pulling image "{GHOST}"'
        attempts = [t for t, r, _ in _waiting_history(c, "ghost") if r == "ErrImagePull"]
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        print("pull attempt gaps (s):", [round(g, 3) for g in gaps])
        assert 0.35 < gaps[0] < 0.7, gaps  # the first retry waits the base, unlike a crash restart
        assert 1.6 < gaps[1] / gaps[0] < 2.4 and 0.75 < gaps[2] / gaps[1] < 1.3, gaps  # 0.4, 0.8, capped at 0.8
        status = c.status("ghost")
        assert status["phase"] == "Pending"
        container = c.container("ghost")
        assert container["imageID"] == "" and "containerID" not in container and not container["ready"]
        assert container["image"] == GHOST and container["restartCount"] == 0


async def test_a_new_image_ends_the_back_off_at_once(tmp_path: Path) -> None:
    async with cluster(tmp_path, backoff_base=60, backoff_cap=300) as c:
        c.create("fixme", [{"name": "c", "image": GHOST}], terminationGracePeriodSeconds=30)
        await wait_for(lambda: _waiting(c, "fixme").get("reason") == "ImagePullBackOff", what="ImagePullBackOff")

        def set_image(pod: dict[str, Any]) -> None:
            pod["spec"]["containers"][0]["image"] = "registry.k8s.io/pause:3.10"

        c.core.mutate(c.pods, "default", "fixme", set_image)
        await wait_for(lambda: c.status("fixme").get("phase") == "Running", within=10, what="Running on pause")
        assert c.container("fixme")["image"] == "registry.k8s.io/pause:3.10"
        assert c.container("fixme")["imageID"] == "localkube://registry.k8s.io/pause:3.10"


async def test_an_unknown_image_runs_when_the_container_names_its_program(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("command", [{"name": "c", "image": GHOST, "command": ["sh", "-c", "echo ran"]}],
                 restartPolicy="Never")
        c.create("args", [{"name": "c", "image": GHOST, "args": ["sh", "-c", "echo args"]}], restartPolicy="Never")
        await wait_for(lambda: c.status("command").get("phase") == "Succeeded", what="command Succeeded")
        await wait_for(lambda: c.status("args").get("phase") == "Succeeded", what="args Succeeded")
        assert await c.log("command") == (200, b"ran\n")
        assert await c.log("args") == (200, b"args\n")


async def test_a_user_mapping_comes_before_the_catalog(tmp_path: Path) -> None:
    mapping = ImageMapping("busybox:*", entrypoint=("echo",), cmd=("mapped",))
    async with cluster(tmp_path, image_map=[mapping]) as c:
        c.create("mine", [{"name": "c", "image": "busybox:1.36"}], restartPolicy="Never")
        c.create("builtin", [{"name": "c", "image": "busybox", "args": ["echo", "catalog"]}], restartPolicy="Never")
        await wait_for(lambda: c.status("mine").get("phase") == "Succeeded", what="mapped busybox Succeeded")
        await wait_for(lambda: c.status("builtin").get("phase") == "Succeeded", what="catalog busybox Succeeded")
        assert await c.log("mine") == (200, b"mapped\n")
        assert await c.log("builtin") == (200, b"catalog\n")


async def test_an_invalid_image_name_is_refused_even_with_a_command(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("bad", [{"name": "c", "image": "Team/App:1", "command": ["sh", "-c", "echo no"]}])
        await wait_for(lambda: _waiting(c, "bad").get("reason") == "InvalidImageName", what="InvalidImageName")
        assert 'couldn\'t parse image name "Team/App:1"' in _waiting(c, "bad")["message"]
        assert c.status("bad")["phase"] == "Pending"


async def test_pause_runs_and_stops_at_once_on_delete(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("pause", [{"name": "c", "image": "registry.k8s.io/pause:3.10"}], terminationGracePeriodSeconds=30)
        await wait_for(lambda: c.condition("pause", "Ready") == "True", what="pause Ready")
        pid = c.pid("pause")
        assert _cmdline(pid)[-1].endswith(b"programs/pause.py")
        await wait_for(lambda: catches(pid, signal.SIGTERM), what="pause handling SIGTERM")  # as the real one at once
        started = time.monotonic()
        c.core.delete(c.pods, "default", "pause")
        await wait_for(lambda: c.pod("pause") is None, within=10, what="pause removed")
        took = time.monotonic() - started
        assert took < 3, f"pause took {took:.1f}s to stop (grace 30s)"
        last = next(e.obj["status"] for _, e in reversed(c.events)
                    if e.type != "DELETED" and e.obj["metadata"]["name"] == "pause")
        assert last["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


async def test_python_images_run_this_interpreter_by_any_name(tmp_path: Path) -> None:
    script = "import sys; print(sys.executable)"
    async with cluster(tmp_path) as c:
        for name, program in (("py", "python"), ("py3", "python3"), ("abs", "/usr/local/bin/python3")):
            c.create(name, [{"name": "c", "image": "python:3.12-slim", "command": [program, "-c", script]}],
                     restartPolicy="Never")
        c.create("default", [{"name": "c", "image": "python:3.12"}], restartPolicy="Never")
        for name in ("py", "py3", "abs", "default"):
            await wait_for(lambda n=name: c.status(n).get("phase") == "Succeeded", what=f"{name} Succeeded")
        for name in ("py", "py3"):
            assert (await c.log(name))[1].decode().strip() == INTERPRETER
        if not HOST_PYTHON3:  # the image's path, which the host lacks: found by name on the image's PATH instead
            assert (await c.log("abs"))[1].decode().strip() == INTERPRETER
        assert await c.log("default") == (200, b"")  # `python3` with no input, as `docker run python` does


async def test_dask_images_have_the_old_commands_on_path(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        lookup = "command -v dask-scheduler; command -v dask-worker"
        c.create("dask", [{"name": "c", "image": "ghcr.io/dask/dask:latest", "args": ["sh", "-c", lookup]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.status("dask").get("phase") == "Succeeded", what="dask Succeeded")
        bin_dir = tmp_path / "kubelet" / "images" / "dask" / "bin"
        assert (await c.log("dask"))[1].decode().split() == [str(bin_dir / "dask-scheduler"),
                                                              str(bin_dir / "dask-worker")]


async def test_the_operator_image_runs_its_entrypoint_with_its_default_arguments(tmp_path: Path) -> None:
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "dask-kube-operator").write_text('#!/bin/sh\necho "$0" "$@" "$PYTHONUNBUFFERED"\n')
    (fake / "dask-kube-operator").chmod(0o755)
    image = "ghcr.io/dask-kube/dask-kube-operator:0.1.0"
    env = [{"name": "PATH", "value": f"{fake}:/usr/bin:/bin"}]  # the pod's PATH: its fake operator, not the product
    async with cluster(tmp_path) as c:
        c.create("default", [{"name": "c", "image": image, "env": env}], restartPolicy="Never")
        c.create("args", [{"name": "c", "image": image, "env": env, "args": ["--namespace", "x"]}],
                 restartPolicy="Never")
        for name in ("default", "args"):
            await wait_for(lambda n=name: c.status(n).get("phase") == "Succeeded", what=f"{name} Succeeded")
        program = fake / "dask-kube-operator"
        assert await c.log("default") == (
            200, f"{program} --all-namespaces --liveness http://0.0.0.0:8080/healthz 1\n".encode())
        assert await c.log("args") == (200, f"{program} --namespace x 1\n".encode())
