"""dask config defaults under `kubernetes.` (dask_kube/kubernetes.yaml), and the cluster name template."""

from __future__ import annotations

import getpass
import re
import secrets
from pathlib import Path
from typing import Any

import dask.config
import yaml

DEFAULTS_FILE = Path(__file__).with_name("kubernetes.yaml")

with DEFAULTS_FILE.open() as _f:
    dask.config.update_defaults(yaml.safe_load(_f))


def _dns_safe(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "user"


def cluster_name(template: str) -> str:
    """Fill `{user}` and `{uuid}` only: environment variables of those names cannot break it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER variable, as in some containers
        user = "user"
    return template.replace("{user}", _dns_safe(user)).replace("{uuid}", secrets.token_hex(5))


def get(key: str, override: object = None) -> Any:
    """`kubernetes.<key>` from dask config, unless the caller passed a value (not None)."""
    return dask.config.get(f"kubernetes.{key}", override_with=override)


def get_float(key: str, override: float | None = None) -> float:
    return float(get(key, override))


def get_int(key: str, override: int | None = None) -> int:
    return int(get(key, override))
