"""KubeCluster's argument resolution from dask config, without a server."""

from __future__ import annotations

import dask.config
import pytest
import yaml

from dask_kube import CreateMode, KubeCluster, SpecError, make_cluster_spec, naming
from dask_kube.cluster import options


def test_create_mode_from_config_is_honoured() -> None:
    # A plain Enum never equals the string read from config, so config would never apply.
    with dask.config.set({"kubernetes.create-mode": "CREATE_ONLY"}):
        resolved = options.resolve(name="demo")
    assert resolved.create_mode is CreateMode.CREATE_ONLY
    assert resolved.create_mode == "CREATE_ONLY"
    with dask.config.set({"kubernetes.create-mode": "connect_only"}):
        assert options.resolve(name="demo").create_mode is CreateMode.CONNECT_ONLY
    assert options.resolve(name="demo", create_mode="CREATE_ONLY").create_mode is CreateMode.CREATE_ONLY
    with pytest.raises(SpecError, match="CREATE_OR_CONNECT") as err:
        options.resolve(name="demo", create_mode="SOMETIMES")
    assert err.value.field == "create_mode"


@pytest.mark.parametrize("argument,config_value,created,expected", [
    (None, None, True, True),     # created here: delete on close
    (None, None, False, False),   # found by name: never deleted by default
    (None, True, False, False),   # config true does not reach clusters someone else created
    (None, False, True, False),   # config false keeps even created clusters
    (True, None, False, True),    # an explicit argument wins
    (False, None, True, False),
])
def test_shutdown_on_close(argument: bool | None, config_value: bool | None, created: bool, expected: bool) -> None:
    with dask.config.set({"kubernetes.shutdown-on-close": config_value}):
        resolved = options.resolve(name="demo", shutdown_on_close=argument)
    assert resolved.deletes_on_close(created=created) is expected


def test_name_template_ignores_environment_variables_named_user_and_uuid(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("user", "Not.Valid")
    monkeypatch.setenv("uuid", "x")
    monkeypatch.setenv("USER", "John.Doe")
    monkeypatch.setenv("LOGNAME", "John.Doe")
    name = options.resolve().name
    assert name.startswith("dask-john-doe-")
    assert len(name.rsplit("-", 1)[1]) == 10
    assert options.resolve().name != name  # a fresh uuid each time
    with dask.config.set({"kubernetes.name": "team-{user}"}):
        assert options.resolve().name == "team-john-doe"


def test_defaults_come_from_config_and_arguments_win() -> None:
    with dask.config.set({"kubernetes.image": "img:1", "kubernetes.count.start": 4,
                          "kubernetes.worker-command": "dask worker --nthreads 2",
                          "kubernetes.resource-timeout": 120, "kubernetes.scheduler-jupyter": True}):
        resolved = options.resolve(name="demo")
        assert (resolved.image, resolved.n_workers, resolved.resource_timeout, resolved.jupyter) == \
            ("img:1", 4, 120.0, True)
        assert resolved.worker_command == ["dask", "worker", "--nthreads", "2"]
        assert options.resolve(name="demo", n_workers=0, jupyter=False).n_workers == 0
        assert options.resolve(name="demo", jupyter=False).jupyter is False


def test_manifest_from_arguments() -> None:
    manifest = options.resolve(name="demo", image="img", n_workers=2, env={"A": "1"}).manifest()
    assert manifest["metadata"]["name"] == "demo"
    assert manifest["spec"]["worker"]["replicas"] == 2
    assert {"name": "A", "value": "1"} in manifest["spec"]["worker"]["spec"]["containers"][0]["env"]


@pytest.mark.parametrize("timeout,shutdown_on_close,custom,expected", [
    (None, None, False, "300"),   # the default: a cluster this client creates and deletes on close is leased
    (20, None, True, "20"),       # a custom spec too
    (20, False, False, None),     # kept on purpose: never reaped
    (0, None, False, None),       # leases turned off
    (None, None, True, "300"),
])
def test_a_cluster_deleted_on_close_carries_a_client_lease(timeout: int | None, shutdown_on_close: bool | None,
                                                           custom: bool, expected: str | None) -> None:
    custom_spec = make_cluster_spec(name="demo") if custom else None
    with dask.config.set({"kubernetes.client-lease-timeout": timeout} if timeout is not None else {}):
        manifest = options.resolve(name="demo", shutdown_on_close=shutdown_on_close,
                                   custom_cluster_spec=custom_spec).manifest()
    annotations = manifest["metadata"].get("annotations") or {}
    assert annotations.get(naming.CLIENT_LEASE_ANNOTATION) == expected


def test_a_bad_client_lease_timeout_is_refused_before_any_api_call() -> None:
    with dask.config.set({"kubernetes.client-lease-timeout": "soon"}), pytest.raises(SpecError) as err:
        options.resolve(name="demo")
    assert err.value.field == "kubernetes.client-lease-timeout"


def test_custom_spec_from_dict_and_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = make_cluster_spec(name="from-spec", n_workers=1)
    assert options.resolve(custom_cluster_spec=spec).name == "from-spec"
    assert options.resolve(custom_cluster_spec=spec, name="renamed").manifest()["metadata"]["name"] == "renamed"
    assert spec["metadata"]["name"] == "from-spec"  # the caller's dict is not touched
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert options.resolve(custom_cluster_spec=str(path), shutdown_on_close=False).manifest() == spec
    with pytest.raises(SpecError, match="cannot read"):
        options.resolve(custom_cluster_spec=str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match="not a DaskCluster"):
        options.resolve(custom_cluster_spec={"kind": "Pod", "spec": {}})
    broken = make_cluster_spec(name="x", resources={"limits": {"cpu": "1"}})
    broken["spec"]["worker"]["spec"]["containers"][0]["resources"] = {"limit": {"cpu": "1"}}
    with pytest.raises(SpecError, match="limits"):
        options.resolve(custom_cluster_spec=broken)


@pytest.mark.parametrize("kwargs,field", [
    ({"resources": {"limit": {"cpu": "1"}}}, "resources"),
    ({"name": "Upper"}, "name"),
    ({"name": "x" * 54}, "name"),
    ({"env": "A=1"}, "env"),
    ({"worker_command": ""}, "worker_command"),
    ({"n_workers": -1}, "n_workers"),
    ({"scheduler_service_type": "Ingress"}, "scheduler_service_type"),
    ({"resource_timeout": 0}, "resource_timeout"),
])
def test_invalid_arguments_raise_spec_error_before_any_api_call(kwargs: dict, field: str, monkeypatch,  # type: ignore[no-untyped-def]
                                                                tmp_path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    with pytest.raises(SpecError) as err:
        KubeCluster(**{"name": "ok", **kwargs})
    assert err.value.field == field


def test_from_name_validates_too(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    with pytest.raises(SpecError):
        KubeCluster.from_name("Bad.Name")
