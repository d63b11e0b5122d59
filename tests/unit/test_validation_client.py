"""Client-side checks: bad input raises SpecError naming the field, before any API call."""

from __future__ import annotations

import pytest

from dask_kube import config, validation
from dask_kube.errors import SpecError


@pytest.mark.parametrize("name", ["demo", "a", "a" * 53, "dask-1-x"])
def test_valid_cluster_names(name: str) -> None:
    assert validation.validate_cluster_name(name) == name


@pytest.mark.parametrize("name,fragment", [
    ("", "required"), ("a" * 54, "at most 53"), ("Upper", "not a valid"), ("with.dot", "not a valid"),
    ("-lead", "not a valid"), (None, "required"),
])
def test_invalid_cluster_names(name: object, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment) as err:
        validation.validate_cluster_name(name)
    assert err.value.field == "name"


@pytest.mark.parametrize("resources,field,fragment", [
    ({"limit": {"cpu": "1"}}, "resources", "did you mean 'limits'"),
    ({"limits": "1"}, "resources.limits", "must be a mapping"),
    ({"limits": {"cpu": "one"}}, "resources.limits.cpu", "not a quantity"),
    ("2Gi", "resources", "must be a mapping"),
])
def test_invalid_resources(resources: object, field: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment) as err:
        validation.validate_resources(resources)
    assert err.value.field == field


def test_valid_resources() -> None:
    ok = {"limits": {"cpu": 1, "memory": "2Gi", "nvidia.com/gpu": "1"}, "requests": {"cpu": "500m"}}
    assert validation.validate_resources(ok) == ok


@pytest.mark.parametrize("env", [{"A": "1"}, [{"name": "A", "value": "1"}],
                                 [{"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]])
def test_valid_env(env: object) -> None:
    validation.validate_env(env)


@pytest.mark.parametrize("env", [{"1A": "x"}, {"A": None}, [{"value": "x"}], [{"name": "A"}], "A=1"])
def test_invalid_env(env: object) -> None:
    with pytest.raises(SpecError):
        validation.validate_env(env)


@pytest.mark.parametrize("command", ["", [], [""], 3])
def test_invalid_worker_command(command: object) -> None:
    with pytest.raises(SpecError):
        validation.validate_worker_command(command)


def test_pod_spec_problems_find_the_limit_typo() -> None:
    problems = validation.pod_spec_problems({"containers": [{"name": "w", "resources": {"limit": {}}}]},
                                            "spec.worker.spec")
    assert [p.field for p in problems] == ["spec.worker.spec.containers[0].resources"]


def test_name_template_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("user", "{boom}")
    monkeypatch.setenv("uuid", "x")
    monkeypatch.setattr("getpass.getuser", lambda: "John.Doe")
    name = config.cluster_name("dask-{user}-{uuid}")
    assert name.startswith("dask-john-doe-") and len(name) == len("dask-john-doe-") + 10
    validation.validate_cluster_name(name)
