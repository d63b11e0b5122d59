"""An image's directories as each container has them: its own writable copy, with the image's paths mapped to it.

Pods have no filesystem of their own, so `/usr/share/nginx/html` would be the host's. An image (catalog entry or
`ImageMapping`) can declare directories it holds: image path -> a host directory with their initial contents.
Each container instance gets a fresh copy under its pod's directory (as a container's writable layer is fresh at
every start; it goes with the pod), and the kubelet maps paths into those directories in the argv of every
program it starts for the container (command and args after `$(VAR)` expansion, exec, exec probes) and in its
`workingDir`. Programs find the table as JSON in `LOCALKUBE_IMAGE_PATHS` (image path -> host path).

An argument is mapped when it is an image path or a path under one (`..` may not leave it), whole or after its
first `=` (`of=/usr/share/nginx/html/x`, `--root=/usr/share/nginx/html`). Nothing else is: paths inside scripts
(`sh -c '...'`), config files or environment values, and paths a program computes, reach the host's filesystem.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV_VAR = "LOCALKUBE_IMAGE_PATHS"

# image path -> the container's copy on the host
PathTable = Mapping[str, str]


def image_path(path: str) -> str:
    """A declared image directory in the form matching uses: absolute, normalised, no trailing slash."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    if not path.startswith("/") or normal == "/":
        raise ValueError(f"an image directory must be an absolute path below /: {path!r}")
    return normal


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def map_path(path: str, table: PathTable) -> str | None:
    """Where `path` is on the host if it lies in one of the image directories of `table`, else None."""
    if not path.startswith("/"):
        return None
    for directory in sorted(table, key=len, reverse=True):  # nested directories: the innermost wins
        if _inside(path, directory) and _inside(posixpath.normpath(path), directory):
            return table[directory] + path[len(directory):]
    return None


def map_argument(argument: str, table: PathTable) -> str:
    """`argument` with an image path in it mapped: the whole argument, or what follows its first `=`."""
    mapped = map_path(argument, table)
    if mapped is not None:
        return mapped
    key, equals, value = argument.partition("=")
    if equals:
        mapped = map_path(value, table)
        if mapped is not None:
            return f"{key}={mapped}"
    return argument


def map_argv(argv: Sequence[str], table: PathTable) -> list[str]:
    return [map_argument(a, table) for a in argv] if table else list(argv)


def fresh_copies(root: Path, directories: Mapping[str, str]) -> dict[str, str]:
    """Copy each image directory to `root` + its image path, replacing what a previous instance left; the table.

    Copies are the container's own: files and directories are created writable whatever the source's modes.
    """
    shutil.rmtree(root, ignore_errors=True)
    table: dict[str, str] = {}
    for path in sorted(directories, key=len):  # outer directories first, so inner ones land inside them
        target = root / image_path(path).lstrip("/")
        shutil.copytree(directories[path], target, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copyfile)
        for folder, _dirs, _files in os.walk(target):  # copytree gives directories the source's (maybe read-only) mode
            os.chmod(folder, os.stat(folder).st_mode | 0o700)
        table[image_path(path)] = str(target)
    return table
