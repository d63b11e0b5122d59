"""The repository's example manifests (RAPIDS, CPU, DaskJob) embed pod and Service specs that a Kubernetes API
server accepts: checked with LocalKube's validator of the built-in kinds."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from localkube.apiserver.validation import quantity_decode_error, unknown_fields, validate_builtin

from tests.paths import EXAMPLE_MANIFESTS


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def service(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"}, "spec": spec}



def _embedded(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, spec) for every pod spec and service spec embedded in a DaskCluster/DaskJob."""
    spec = doc["spec"]
    found = []
    if doc["kind"] == "DaskJob":
        found.append(("job", "Pod", spec["job"]["spec"]))
        spec = spec["cluster"]["spec"]
    found.append(("worker", "Pod", spec["worker"]["spec"]))
    found.append(("scheduler", "Pod", spec["scheduler"]["spec"]))
    found.append(("service", "Service", spec["scheduler"]["service"]))
    return [(f"{doc['metadata']['name']}-{label}", kind, body) for label, kind, body in found]


def _example_specs() -> list[Any]:
    params = []
    for path in sorted(EXAMPLE_MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for label, kind, body in _embedded(doc):
                params.append(pytest.param(kind, body, id=label))
    return params


EXAMPLE_SPECS = _example_specs()


def test_examples_were_found() -> None:
    """Every sample manifest contributes its worker, scheduler and Service specs (and a DaskJob its runner)."""
    ids = {param.id for param in EXAMPLE_SPECS}
    for path in sorted(EXAMPLE_MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            name = doc["metadata"]["name"]
            assert {f"{name}-worker", f"{name}-scheduler", f"{name}-service"} <= ids, path
    assert "sum-job-job" in ids and len(ids) == len(EXAMPLE_SPECS) >= 13


@pytest.mark.parametrize(("kind", "spec"), EXAMPLE_SPECS)
def test_example_specs_are_valid(kind: str, spec: dict[str, Any]) -> None:
    obj = pod(copy.deepcopy(spec)) if kind == "Pod" else service(copy.deepcopy(spec))
    assert unknown_fields("v1", kind, obj) == []
    assert quantity_decode_error("v1", kind, obj) is None
    assert validate_builtin("v1", kind, obj) == []
