"""The default image: the Dask image tagged for this client's own distributed and Python versions.

A scheduler or worker whose distributed differs from the client's may fail in ways that have nothing to say about
versions (a message it cannot decode, a task it cannot unpickle), and `latest` moves under running notebooks. So,
unless an image is named (`image=`, `kubernetes.image`), the image is `kubernetes.image-template` filled with the
versions installed here: `ghcr.io/dask/dask:2025.1.0-py3.12` for distributed 2025.1.0 on Python 3.12. A
distributed that is no release (a development or local build) has no image of its own: `{distributed}` becomes
`latest` then.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version

from . import config

DEFAULT_TEMPLATE = "ghcr.io/dask/dask:{distributed}-py{python}"
UNRELEASED = "latest"
_RELEASE = re.compile(r"^\d+(\.\d+)*$")  # 2025.1.0: what the Dask images are tagged with


def installed(package: str) -> str | None:
    """The installed version of `package` (from its metadata: no import), or None if it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def tagged(template: str, distributed: str | None, python: str) -> str:
    """`template` with `{distributed}` and `{python}` filled in (plain replacement: no other braces are read)."""
    release = distributed if distributed is not None and _RELEASE.match(distributed) else UNRELEASED
    return template.replace("{distributed}", release).replace("{python}", python)


def for_this_client() -> str:
    """`kubernetes.image-template` for the versions installed here."""
    template = str(config.get("image-template") or DEFAULT_TEMPLATE)
    return tagged(template, installed("distributed"), python_version())


def default_image() -> str:
    """`kubernetes.image` if set, else the image made for this client."""
    named = config.get("image")
    return str(named) if named else for_this_client()
