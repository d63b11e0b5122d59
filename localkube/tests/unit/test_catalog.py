"""The built-in image catalog: image names, the argv each image runs, its wrappers, and the pull errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localkube.node.catalog import (
    CATALOG,
    PYTHON,
    Catalog,
    CatalogEntry,
    Program,
    host_program,
    invalid_name,
    markdown_table,
    pull_failure,
)
from localkube.node.images import ConfigError, base_environment, container_argv
from localkube.node.references import ImageReference, parse
from localkube.testing import until

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("image", "expected"), [
    ("nginx", ImageReference("docker.io/library/nginx")),
    ("nginx:1.27", ImageReference("docker.io/library/nginx", "1.27")),
    ("library/nginx:alpine", ImageReference("docker.io/library/nginx", "alpine")),
    ("docker.io/nginx", ImageReference("docker.io/library/nginx")),
    ("index.docker.io/library/nginx:latest", ImageReference("docker.io/library/nginx", "latest")),
    (f"nginx@{DIGEST}", ImageReference("docker.io/library/nginx", "", DIGEST)),
    (f"nginx:1.27@{DIGEST}", ImageReference("docker.io/library/nginx", "1.27", DIGEST)),
    ("daskdev/dask:2024.1.0", ImageReference("docker.io/daskdev/dask", "2024.1.0")),
    ("localhost:5000/team/app:v1", ImageReference("localhost:5000/team/app", "v1")),
    ("localhost/app", ImageReference("localhost/app")),
    ("registry.k8s.io/pause:3.9", ImageReference("registry.k8s.io/pause", "3.9")),
    ("ghcr.io/dask/dask", ImageReference("ghcr.io/dask/dask")),
])
def test_references_are_read_like_a_runtime(image: str, expected: ImageReference) -> None:
    assert parse(image) == expected


@pytest.mark.parametrize("image", ["", "Nginx", "nginx:", "nginx:bad tag", "nginx@sha256:abc", "a//b", "-x",
                                   "nginx:1.27:2", "ex ample/app", "x" * 256])
def test_invalid_references(image: str) -> None:
    assert parse(image) is None


def test_qualified_names() -> None:
    assert parse("nginx").qualified == "docker.io/library/nginx:latest"  # type: ignore[union-attr]
    assert parse(f"nginx@{DIGEST}").qualified == f"docker.io/library/nginx@{DIGEST}"  # type: ignore[union-attr]


@pytest.mark.parametrize(("image", "key"), [
    ("registry.k8s.io/pause", "pause"), ("registry.k8s.io/pause:3.10", "pause"),
    (f"registry.k8s.io/pause@{DIGEST}", "pause"), ("k8s.gcr.io/pause:3.2", "pause"),
    ("gcr.io/google_containers/pause:3.1", "pause"), ("gcr.io/google_containers/pause-amd64:3.0", "pause"),
    ("nginx", "nginx"), ("nginx:1.27", "nginx"), ("nginx:alpine", "nginx"), ("docker.io/nginx", "nginx"),
    ("docker.io/library/nginx:1.25", "nginx"), ("library/nginx", "nginx"), ("mirror.gcr.io/library/nginx", "nginx"),
    ("busybox", "busybox"), ("busybox:1.36", "busybox"), ("docker.io/library/busybox:latest", "busybox"),
    ("public.ecr.aws/docker/library/busybox:stable", "busybox"),
    ("alpine:3.20", "alpine"), ("ubuntu:24.04", "ubuntu"), ("docker.io/debian:bookworm-slim", "debian"),
    ("python", "python"), ("python:3.11", "python"), ("python:3.12-slim", "python"),
    ("docker.io/library/python:3.13", "python"),
    ("ghcr.io/dask/dask", "dask"), ("ghcr.io/dask/dask:latest", "dask"), ("ghcr.io/dask/dask:2024.8.0-py3.12", "dask"),
    ("daskdev/dask", "dask"), ("daskdev/dask:2023.1.0", "dask"), ("docker.io/daskdev/dask:latest", "dask"),
    ("ghcr.io/dask-kube/dask-kube-operator:0.1.0", "dask-kube-operator"),
])
def test_catalog_finds_every_spelling(tmp_path: Path, image: str, key: str) -> None:
    entry = Catalog(tmp_path).find(image)
    assert entry is not None and entry.key == key


@pytest.mark.parametrize("image", ["nginxinc/nginx-unprivileged", "example.com/nginx", "myorg/ubuntu", "python3",
                                   "ghcr.io/dask/dask-notebook", "quay.io/pause", "Nginx", "registry.k8s.io/pause2"])
def test_catalog_ignores_lookalikes(tmp_path: Path, image: str) -> None:
    assert Catalog(tmp_path).find(image) is None
    assert Catalog(tmp_path).mapping(image) is None


def _argv(tmp_path: Path, image: str, **container: object) -> list[str]:
    mapping = Catalog(tmp_path).mapping(image)
    assert mapping is not None
    return container_argv({"name": "c", "image": image, **container}, {}, mapping)


def test_default_commands_are_the_images(tmp_path: Path) -> None:
    bin_dir = tmp_path / "nginx" / "bin"
    assert _argv(tmp_path, "nginx") == [str(bin_dir / "docker-entrypoint.sh"), "nginx", "-g", "daemon off;"]
    assert _argv(tmp_path, "registry.k8s.io/pause:3.9") == [str(tmp_path / "pause" / "bin" / "pause")]
    assert _argv(tmp_path, "busybox") == ["sh"]
    assert _argv(tmp_path, "alpine:3") == ["/bin/sh"]
    assert _argv(tmp_path, "ubuntu") == ["/bin/bash"]
    assert _argv(tmp_path, "debian:12") == ["bash"]
    assert _argv(tmp_path, "python:3.11") == ["python3"]
    assert _argv(tmp_path, "ghcr.io/dask-kube/dask-kube-operator:1") == [
        "dask-kube-operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]


def test_command_and_args_follow_the_runtime_rules(tmp_path: Path) -> None:
    assert _argv(tmp_path, "nginx", command=["nginx", "-g", "daemon off;"]) == ["nginx", "-g", "daemon off;"]
    entrypoint = str(tmp_path / "nginx" / "bin" / "docker-entrypoint.sh")
    assert _argv(tmp_path, "nginx", args=["nginx", "-t"]) == [entrypoint, "nginx", "-t"]
    assert _argv(tmp_path, "busybox", args=["echo", "hi"]) == ["echo", "hi"]
    # The operator's manifests give only options: the entrypoint stays, as on a real node.
    assert _argv(tmp_path, "ghcr.io/dask-kube/dask-kube-operator:1", args=["--namespace", "x"]) == [
        "dask-kube-operator", "--namespace", "x"]
    assert _argv(tmp_path, "ghcr.io/dask/dask:latest", args=["dask-worker", "tcp://s:8786"]) == [
        "dask-worker", "tcp://s:8786"]


def test_mappings_put_the_bin_dir_first_and_add_the_images_env(tmp_path: Path) -> None:
    mapping = Catalog(tmp_path).mapping("ghcr.io/dask/dask:latest")
    assert mapping is not None
    env = base_environment(mapping, {"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[:2] == [str(tmp_path / "dask" / "bin"), os.path.dirname(sys.executable)]
    operator = Catalog(tmp_path).mapping("ghcr.io/dask-kube/dask-kube-operator:1")
    assert operator is not None and operator.path == () and operator.env["PYTHONUNBUFFERED"] == "1"


def _run(argv: list[str], path: list[Path | str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.pathsep.join([*(str(p) for p in path), "/usr/bin", "/bin"])}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def test_python_and_python3_are_this_interpreter(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    assert catalog.mapping("python:3.12") is not None
    bin_dir = tmp_path / "python" / "bin"
    for name in ("python", "python3"):
        out = _run([name, "-c", "import sys; print(sys.executable)"], [bin_dir])
        assert out.stdout.strip() == os.path.abspath(sys.executable), out.stderr


def _fake(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{text}\n")
    path.chmod(0o755)
    return path


def test_dask_wrappers_exec_the_dask_command_on_path(tmp_path: Path) -> None:
    assert Catalog(tmp_path / "work").mapping("ghcr.io/dask/dask:latest") is not None
    bin_dir = tmp_path / "work" / "dask" / "bin"
    _fake(tmp_path / "fake", "dask", 'echo "$0" "$@"')
    out = _run(["dask-worker", "tcp://scheduler:8786", "--nthreads", "2"], [bin_dir, tmp_path / "fake"])
    assert out.stdout == f"{tmp_path / 'fake' / 'dask'} worker tcp://scheduler:8786 --nthreads 2\n", out.stderr
    out = _run(["dask-scheduler", "--port", "0"], [bin_dir, tmp_path / "fake"])
    assert out.stdout.split()[1:] == ["scheduler", "--port", "0"]


def test_dask_wrappers_fall_back_on_the_interpreters_directory(tmp_path: Path) -> None:
    """Outside a pod's PATH, the `dask` next to the interpreter (a fake interpreter here) is the one."""
    venv = tmp_path / "venv" / "bin"
    _fake(venv, "dask", 'echo fallback "$@"')
    assert Catalog(tmp_path / "work", python=str(venv / "python")).mapping("daskdev/dask") is not None
    out = _run([str(tmp_path / "work" / "dask" / "bin" / "dask-worker"), "x"], [])
    assert out.stdout == "fallback worker x\n", out.stderr


def test_pass_through_entrypoint_runs_its_arguments(tmp_path: Path) -> None:
    _argv(tmp_path, "nginx")
    out = _run([str(tmp_path / "nginx" / "bin" / "docker-entrypoint.sh"), "echo", "a b"], [])
    assert out.stdout == "a b\n"


def test_wrappers_are_rewritten_for_the_current_interpreter(tmp_path: Path) -> None:
    entry = CatalogEntry("t", ("example.com/t",), "test", programs=(Program("py", (PYTHON, "-V")),))
    Catalog(tmp_path, [entry], python="/old/python").mapping("example.com/t")
    Catalog(tmp_path, [entry], python="/new/python").mapping("example.com/t")
    text = (tmp_path / "t" / "bin" / "py").read_text()
    assert "exec /new/python -V" in text and "/old/" not in text
    assert os.access(tmp_path / "t" / "bin" / "py", os.X_OK)


def test_an_unwritable_work_dir_is_a_container_creation_error(tmp_path: Path) -> None:
    (tmp_path / "nginx").write_text("a file where the bin directory should go")
    with pytest.raises(ConfigError) as info:
        Catalog(tmp_path).mapping("nginx")
    assert info.value.reason == "CreateContainerError" and "nginx" in info.value.message


def test_absolute_paths_the_host_lacks_are_found_on_the_containers_path(tmp_path: Path) -> None:
    _argv(tmp_path, "registry.k8s.io/pause")
    path = os.pathsep.join([str(tmp_path / "pause" / "bin"), "/usr/bin", "/bin"])
    assert host_program(["/pause", "-v"], path) == [str(tmp_path / "pause" / "bin" / "pause"), "-v"]
    assert host_program(["/bin/sh", "-c", "true"], path) == ["/bin/sh", "-c", "true"]  # the host has it
    assert host_program(["/nowhere/nothing"], path) == ["/nowhere/nothing"]  # runc's error follows
    assert host_program(["pause"], path) == ["pause"]


def test_pause_exits_zero_at_once_on_sigterm(tmp_path: Path) -> None:
    _argv(tmp_path, "registry.k8s.io/pause")
    proc = subprocess.Popen([str(tmp_path / "pause" / "bin" / "pause")])
    try:
        until(lambda: catches(proc.pid, signal.SIGTERM), "pause to handle SIGTERM", within=10)
        assert proc.poll() is None  # it waits
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()


def catches(pid: int, sig: int) -> bool:
    """Whether `pid` has a handler for `sig` yet (Linux: SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask & (1 << (sig - 1)))


def test_pull_failure_names_the_image_and_the_fix() -> None:
    err = pull_failure("example.com/team/app:1")
    assert err.reason == "ErrImagePull"
    assert err.message.startswith('failed to pull and unpack image "example.com/team/app:1"')
    assert "LocalKube runs no images" in err.message and "images[].pattern" in err.message
    assert "command" in err.message
    assert 'image "docker.io/library/nothing:latest"' in pull_failure("nothing").message
    invalid = invalid_name("Bad:Name:1")
    assert invalid.reason == "InvalidImageName" and "invalid reference format" in invalid.message


def test_markdown_table_lists_every_entry() -> None:
    table = markdown_table()
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(CATALOG)
    for entry, line in zip(CATALOG, lines[2:], strict=True):
        assert entry.runs in line
    assert "`nginx`" in table and "`registry.k8s.io/pause`" in table and "`daskdev/dask`" in table
    assert "`nginx -g 'daemon off;'`" in table


def test_the_readme_lists_the_catalog_as_it_is() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert markdown_table() in readme
