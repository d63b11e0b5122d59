"""The images LocalKube knows without being told, so that manifests written for them run with no setup.

LocalKube runs no images: a container's program is its `command`, else what the image's ENTRYPOINT and CMD would
run. The user's image mappings say that for their images (`images[]` of the LocalKube config file, `image_map`
in Python); for well-known images the kubelet falls back on `CATALOG`, one table with an entry per image:

- `repositories`: the repositories it stands for, fully qualified (`docker.io/library/nginx`). Every tag and
  digest matches, and every spelling of a Docker Hub name (`nginx`, `library/nginx`, `docker.io/nginx:1.27`).
- `entrypoint`, `cmd`: the image's ENTRYPOINT and CMD, with the runtime's rules (images.container_argv).
- `programs`: executables the image has and the host may lack (`pause`, `nginx`, `dask-worker`). The kubelet
  writes them as small `/bin/sh` wrappers into a bin directory per image under its work directory, first on the
  container's PATH. A program runs this interpreter (`PYTHON`, for the stand-ins of programs/), a command found
  on PATH when it runs (`dask` for `dask-worker`), or, with no argv, its own arguments (a pass-through
  entrypoint such as nginx's `/docker-entrypoint.sh`).
- `env`: variables the image sets, under the pod's own.
- `directories`: directories the image holds, image path -> their initial contents (a folder of programs/): each
  container gets its own writable copy, and paths into them are mapped to it (imagefs.py).

A catalog image's absolute program paths that the host does not have (`/pause`, `/usr/local/bin/python`) are
looked up by name on the container's PATH, as the image would have them where it expects them.

An image matched by neither mappings nor catalog cannot run unless the container names its program (`command`,
or `args` whose first element is the program): the kubelet reports it as a real one reports an image it cannot
pull (`pull_failure`). `markdown_table()` lists the catalog for documentation.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localkube.node.images import ConfigError, ImageMapping
from localkube.node.references import OFFICIAL_PREFIX, parse

PYTHON = "<python>"  # in a Program's argv: the interpreter running LocalKube
PROGRAMS_DIR = Path(__file__).parent / "programs"


def _stand_in(name: str, *options: str) -> tuple[str, ...]:
    return PYTHON, *options, str(PROGRAMS_DIR / f"{name}.py")


@dataclass(frozen=True)
class Program:
    """An executable of an image: `name` runs `argv` followed by its own arguments."""

    name: str
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogEntry:
    """One well-known image (the module docstring describes the fields); `key` names its bin directory."""

    key: str
    repositories: tuple[str, ...]
    runs: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    programs: tuple[Program, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    directories: Mapping[str, Path] = field(default_factory=dict)


def docker_hub(name: str) -> tuple[str, ...]:
    """A Docker Hub repository and the mirrors that serve it under the same path."""
    path = name if "/" in name else OFFICIAL_PREFIX + name
    mirrors = [f"docker.io/{path}", f"mirror.gcr.io/{path}"]
    if "/" not in name:
        mirrors.append(f"public.ecr.aws/docker/{path}")
    return tuple(mirrors)


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "pause",
        ("registry.k8s.io/pause", "k8s.gcr.io/pause", "gcr.io/google_containers/pause",
         "gcr.io/google_containers/pause-amd64"),
        "waits until stopped; exits 0 at once on SIGTERM/SIGINT",
        # No site, so no network shim: the stand-in starts in 10 ms, as quick to handle SIGTERM as the real one.
        entrypoint=("pause",), programs=(Program("pause", _stand_in("pause", "-I", "-S")),)),
    CatalogEntry(
        "nginx", docker_hub("nginx"),
        "a stand-in nginx: the files of `/usr/share/nginx/html` (the welcome page, `50x.html`) on port 80, "
        "`Server: nginx`, access log on stdout",
        entrypoint=("docker-entrypoint.sh",), cmd=("nginx", "-g", "daemon off;"),
        programs=(Program("docker-entrypoint.sh"), Program("nginx", _stand_in("nginx"))),
        directories={"/usr/share/nginx/html": PROGRAMS_DIR / "nginx-html"}),
    CatalogEntry("busybox", docker_hub("busybox"), "the host's shell and tools", cmd=("sh",)),
    CatalogEntry("alpine", docker_hub("alpine"), "the host's shell and tools", cmd=("/bin/sh",)),
    CatalogEntry("ubuntu", docker_hub("ubuntu"), "the host's shell and tools", cmd=("/bin/bash",)),
    CatalogEntry("debian", docker_hub("debian"), "the host's shell and tools", cmd=("bash",)),
    CatalogEntry(
        "python", docker_hub("python"), "LocalKube's own interpreter as `python` and `python3`",
        cmd=("python3",), programs=(Program("python", (PYTHON,)), Program("python3", (PYTHON,)))),
    CatalogEntry(
        "dask", ("ghcr.io/dask/dask", *docker_hub("daskdev/dask")),
        "its arguments, with the `dask` on PATH (LocalKube's environment); `dask-scheduler` and `dask-worker` "
        "run `dask scheduler` and `dask worker`",
        programs=(Program("dask-scheduler", ("dask", "scheduler")), Program("dask-worker", ("dask", "worker")))),
    CatalogEntry(
        "dask-kube-operator", ("ghcr.io/dask-kube/dask-kube-operator",),
        "the `dask-kube-operator` on PATH (LocalKube's environment)",
        entrypoint=("dask-kube-operator",), cmd=("--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"),
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}),
)


class ImagePullError(ConfigError):
    """The image is unknown and the container names no program: reported as a failed pull (ErrImagePull)."""

    def __init__(self, message: str) -> None:
        super().__init__("ErrImagePull", message)


def pull_failure(image: str) -> ImagePullError:
    """What the kubelet says of an image LocalKube knows no program for: a runtime's pull error, and the fix."""
    ref = parse(image)
    name = ref.qualified if ref is not None else image
    return ImagePullError(
        f'failed to pull and unpack image "{name}": LocalKube runs no images and knows no program for "{image}": '
        "map it in the LocalKube config file (images[].pattern with entrypoint and cmd) or give the container a "
        "command")


def invalid_name(image: str) -> ConfigError:
    return ConfigError("InvalidImageName", f'Failed to apply default image tag "{image}": couldn\'t parse image '
                                           f'name "{image}": invalid reference format')


def wrapper(program: Program, python: str) -> str:
    """The `/bin/sh` script that stands for `program` in an image's bin directory."""
    quote = shlex.quote
    head = f"#!/bin/sh\n# {program.name}, as the image has it: written by LocalKube's image catalog.\n"
    if not program.argv:
        return head + 'exec "$@"\n'
    first, *rest = program.argv
    tail = "".join(f" {quote(a)}" for a in rest) + ' "$@"\n'
    if first == PYTHON:
        return head + f"exec {quote(python)}{tail}"
    fallback = os.path.join(os.path.dirname(python), first)
    return head + f"p=$(command -v {quote(first)}) || p={quote(fallback)}\nexec \"$p\"{tail}"


class Catalog:
    """The catalog for one kubelet: each image's bin directory is written under `root` when first needed."""

    def __init__(self, root: Path, entries: Sequence[CatalogEntry] = CATALOG, python: str = sys.executable) -> None:
        self.root = Path(root)
        self.entries = tuple(entries)
        self.python = python
        self._by_repository = {repo: e for e in self.entries for repo in e.repositories}
        self._mappings: dict[str, ImageMapping] = {}

    def find(self, image: str) -> CatalogEntry | None:
        ref = parse(image)
        return self._by_repository.get(ref.repository) if ref is not None else None

    def mapping(self, image: str) -> ImageMapping | None:
        """What the kubelet runs for `image`, as an image mapping of its own; None if the catalog lacks it."""
        entry = self.find(image)
        if entry is None:
            return None
        if entry.key not in self._mappings:
            try:
                self._mappings[entry.key] = self._materialise(entry)
            except OSError as err:  # the container cannot be created; the kubelet tries again
                raise ConfigError("CreateContainerError", f"writing the programs of image {image!r}: {err}")
        return self._mappings[entry.key]

    def bin_dir(self, entry: CatalogEntry) -> Path:
        return self.root / entry.key / "bin"

    def _materialise(self, entry: CatalogEntry) -> ImageMapping:
        """Write the entry's wrappers (again in each LocalKube run: the interpreter may have moved)."""
        path: tuple[str, ...] = ()
        entrypoint = entry.entrypoint
        if entry.programs:
            bin_dir = self.bin_dir(entry)
            bin_dir.mkdir(parents=True, exist_ok=True)
            for program in entry.programs:
                target = bin_dir / program.name
                temporary = target.with_name(f".{program.name}.tmp")
                temporary.write_text(wrapper(program, self.python))
                temporary.chmod(0o755)
                os.replace(temporary, target)  # atomic: a container may be running the old one
            path = (str(bin_dir),)
            # The image's own entrypoint works even when the pod's env replaces PATH, as an absolute path would.
            if entrypoint and entrypoint[0] in {p.name for p in entry.programs}:
                entrypoint = (str(bin_dir / entrypoint[0]), *entrypoint[1:])
        return ImageMapping(entry.key, path=path, env=dict(entry.env), entrypoint=entrypoint, cmd=entry.cmd,
                            directories={k: str(v) for k, v in entry.directories.items()})


def host_program(argv: list[str], path: str | None) -> list[str]:
    """An absolute program path the host lacks (`/pause`, `/usr/local/bin/python`) becomes the program of that
    name on `path` (the container's PATH, where the image's bin directory comes first); others are unchanged."""
    if argv and os.path.isabs(argv[0]) and not os.path.exists(argv[0]):
        found = shutil.which(os.path.basename(argv[0]), path=path)
        if found is not None:
            return [found, *argv[1:]]
    return argv


def markdown_table(entries: Sequence[CatalogEntry] = CATALOG) -> str:
    """The catalog as a Markdown table, for the documentation."""
    rows = ["| Image (any tag or digest) | What runs | Entrypoint | Default command (CMD) |",
            "|---|---|---|---|"]
    for entry in entries:
        names = ", ".join(f"`{short_name(r)}`" for r in entry.repositories if not r.startswith(("mirror.", "public.")))
        rows.append(f"| {names} | {entry.runs} | {_words(entry.entrypoint)} | {_words(entry.cmd)} |")
    return "\n".join(rows) + "\n"


def short_name(repository: str) -> str:
    """`docker.io/library/nginx` as people write it: `nginx`."""
    return repository.removeprefix("docker.io/").removeprefix(OFFICIAL_PREFIX)


def _words(argv: Sequence[str]) -> str:
    return f"`{shlex.join(argv)}`" if argv else "—"
