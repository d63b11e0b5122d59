"""A small kopf operator for the LocalKube fidelity tests: records when each handler ran."""

from __future__ import annotations

import time

import kopf

# kopf loads this file by path, as a module of its own; the records live in a normally imported module
# so that the test in the same process reads the same list.
from tests.kopf_records import RECORDS


@kopf.on.create("example.com", "v1", "widgets")
def created(name: str, spec: dict, patch: kopf.Patch, **_: object) -> dict:
    RECORDS.append(("create", name, time.monotonic()))
    patch.status["phase"] = "Created"
    return {"size": spec["size"]}


@kopf.on.update("example.com", "v1", "widgets")
def updated(name: str, spec: dict, patch: kopf.Patch, **_: object) -> None:
    RECORDS.append(("update", name, time.monotonic()))
    patch.status["phase"] = f"Updated-{spec['size']}"


@kopf.on.delete("example.com", "v1", "widgets")
def deleted(name: str, **_: object) -> None:
    RECORDS.append(("delete", name, time.monotonic()))
