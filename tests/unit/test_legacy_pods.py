"""Legacy mode's pure builders: templates in, Pods and Service out, no server."""

from __future__ import annotations

import copy

import pytest

from dask_kube import naming, status
from dask_kube.errors import SpecError
from dask_kube.legacy import clean_pod_template, make_pod_from_dict, make_pod_spec, pods

OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "c-scheduler", "uid": "u-1", "controller": True,
         "blockOwnerDeletion": True}


def _template(args: list[str], command: list[str] | None = None, **resources: dict) -> dict:
    container: dict = {"name": "w", "image": "img", "args": args}
    if command is not None:
        container["command"] = command
    if resources:
        container["resources"] = resources
    return clean_pod_template({"kind": "Pod", "spec": {"containers": [container]}})


def test_make_pod_spec_shape() -> None:
    pod = make_pod_spec("img", labels={"a": "b"}, threads_per_worker=2, env={"X": 1}, memory_limit="4G",
                        memory_request="2G", cpu_limit=1, cpu_request="500m", annotations={"n": "v"},
                        resources="GPU=1", extra_container_config={"imagePullPolicy": "Always"},
                        extra_pod_config={"tolerations": [{"key": "t"}], "nodeSelector": {"z": "1"}})
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"] == {"labels": {"a": "b"}, "annotations": {"n": "v"}}
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["nodeSelector"] == {"z": "1"}
    [container] = pod["spec"]["containers"]
    assert container["args"] == ["dask-worker", "$(DASK_SCHEDULER_ADDRESS)", "--nthreads", "2", "--death-timeout",
                                 "60", "--memory-limit", "4G", "--resources", "GPU=1"]
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "4G"},
                                      "requests": {"cpu": "500m", "memory": "2G"}}
    assert container["env"] == [{"name": "X", "value": "1"}] and container["imagePullPolicy"] == "Always"
    assert "resources" not in make_pod_spec("img")["spec"]["containers"][0]


def test_extra_config_merges_mappings_appends_lists_replaces_scalars() -> None:
    pod = make_pod_spec("img", env={"A": "1"},
                        extra_container_config={"env": [{"name": "B", "value": "2"}], "image": "other",
                                                "securityContext": {"runAsUser": 1}})
    container = pod["spec"]["containers"][0]
    assert [e["name"] for e in container["env"]] == ["A", "B"] and container["image"] == "other"
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    assert pods.merge_into(base, {"a": {"c": [2], "e": 3}, "d": 2}) == {"a": {"b": 1, "c": [1, 2], "e": 3}, "d": 2}


def test_make_pod_from_dict_completes_and_checks() -> None:
    source = {"spec": {"containers": [{"image": "a"}, {"image": "b", "name": "side"}]}}
    pod = make_pod_from_dict(source)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["dask-0", "side"]
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1" and pod["metadata"] == {}
    assert "name" not in source["spec"]["containers"][0]  # the caller's dict is left alone
    for bad, field in (({"kind": "Deployment", "spec": {"containers": [{}]}}, "pod_template.kind"),
                       ({"spec": {}}, "pod_template.spec.containers"), ("pod", "pod_template")):
        with pytest.raises(SpecError) as info:
            make_pod_from_dict(bad)  # type: ignore[arg-type]
        assert info.value.field == field


@pytest.mark.parametrize("mode", ["preferred", "required", "none"])
def test_clean_pod_template_tolerations_and_affinity(mode: str) -> None:
    pod = clean_pod_template(make_pod_spec("img"), naming.Component.SCHEDULER, mode)
    assert [(t["key"], t["value"]) for t in pod["spec"]["tolerations"]] == [
        ("k8s.dask.org/dedicated", "scheduler"), ("k8s.dask.org_dedicated", "scheduler")]
    node = pod["spec"].get("affinity", {}).get("nodeAffinity", {})
    if mode == "preferred":
        [term] = node["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["preference"]["matchExpressions"][0]["values"] == ["scheduler"]
    elif mode == "required":
        assert node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    else:
        assert node == {}
    with pytest.raises(SpecError):
        clean_pod_template(make_pod_spec("img"), affinity="sometimes")


@pytest.mark.parametrize(("argv", "limits", "expected"), [
    (["dask-worker"], {"cpu": "2", "memory": "1Gi"},
     ["--nthreads", "2", "--memory-limit", str(2**30), "--death-timeout", "60"]),
    (["dask-worker"], {"cpu": "1500m", "memory": "500M"},
     ["--nthreads", "1", "--memory-limit", "500000000", "--death-timeout", "60"]),
    (["dask-worker"], {"cpu": "250m"}, ["--nthreads", "1", "--death-timeout", "60"]),
    (["dask-worker"], {}, ["--death-timeout", "60"]),
    (["dask-worker", "--nthreads=4", "--memory-limit", "6GB", "--death-timeout", "5"], {"cpu": "2", "memory": "1G"},
     []),
])
def test_derived_worker_args(argv: list[str], limits: dict, expected: list[str]) -> None:
    assert pods.derived_worker_args(argv, {"limits": limits}, 60) == expected


def test_flags() -> None:
    argv = ["x", "--name", "a", "--name=b", "--other", "1"]
    assert pods.flag_value(argv, "--name") == "b" and pods.flag_value(argv, "--missing") is None
    assert pods.drop_flag(argv, "--name") == ["x", "--other", "1"]
    assert pods.parse_quantity("100m") * 10 == 1 and pods.parse_quantity("2Ki") == 2048
    with pytest.raises(SpecError):
        pods.parse_quantity("lots")


def test_worker_pod() -> None:
    template = _template(["dask-worker", "--nthreads", "2", "--name", "fixed"], limits={"memory": "1G"})
    template["metadata"].update(labels={"foo": "bar", naming.CLUSTER_LABEL: "wrong"}, generateName="x-")
    template["spec"]["containers"][0]["env"] = [{"name": "DASK_SCHEDULER_ADDRESS", "value": "old"},
                                                {"name": "MINE", "value": "$(DASK_WORKER_NAME)"}]
    before = copy.deepcopy(template)
    pod = pods.worker_pod(template, name="c-worker-1", cluster="c", namespace="ns",
                          scheduler_address="tcp://s:8786", owner=OWNER)
    assert template == before
    meta = pod["metadata"]
    assert meta["name"] == "c-worker-1" and meta["namespace"] == "ns" and "generateName" not in meta
    assert meta["labels"] == {"foo": "bar", **naming.worker_selector("c")}
    assert meta["ownerReferences"] == [OWNER]
    container = pod["spec"]["containers"][0]
    assert container["env"] == [{"name": naming.SCHEDULER_ADDRESS_ENV, "value": "tcp://s:8786"},
                                {"name": naming.WORKER_NAME_ENV, "value": "c-worker-1"},
                                {"name": "MINE", "value": "$(DASK_WORKER_NAME)"}]
    assert container["args"] == ["dask-worker", "--nthreads", "2", "--memory-limit", "1000000000",
                                 "--death-timeout", "60", "--name", "c-worker-1"]
    assert "ownerReferences" not in pods.worker_pod(template, name="n", cluster="c", namespace="ns",
                                                    scheduler_address="a")["metadata"]


@pytest.mark.parametrize(("command", "args", "expected"), [
    (None, ["dask-worker", "$(DASK_SCHEDULER_ADDRESS)", "--nthreads", "2"], (None, ["dask-scheduler"])),
    (None, ["/opt/conda/bin/dask-worker"], (None, ["/opt/conda/bin/dask-scheduler"])),
    (["tini", "-g", "--"], ["dask-worker", "--nthreads", "2"], (["tini", "-g", "--"], ["dask-scheduler"])),
    (["dask", "worker"], ["--nthreads", "2"], (["dask", "scheduler"], [])),
    (None, ["dask", "worker", "--nthreads", "2"], (None, ["dask", "scheduler"])),
    (["python", "-m", "distributed.cli.dask_worker"], [], (["python", "-m", "distributed.cli.dask_scheduler"], [])),
    (None, ["dask-scheduler", "--port", "8786"], (None, ["dask-scheduler", "--port", "8786"])),
    (["/entrypoint.sh"], ["something"], (["/entrypoint.sh"], ["dask-scheduler"])),
])
def test_scheduler_command(command: list[str] | None, args: list[str], expected: tuple) -> None:
    container = {"args": args, **({"command": command} if command else {})}
    assert pods.scheduler_command(container) == expected


def test_scheduler_pod_and_service() -> None:
    template = _template(["dask-worker", "--nthreads", "2"], limits={"cpu": "1"})
    pod = pods.scheduler_pod(template, cluster="c", namespace="ns", extra_args=["--idle-timeout", "60"])
    assert pod["metadata"]["name"] == naming.scheduler_name("c")
    assert pod["metadata"]["labels"] == naming.scheduler_selector("c")
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["dask-scheduler", "--port", "8786", "--dashboard-address", ":8787",
                                 "--idle-timeout", "60"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert container["readinessProbe"]["tcpSocket"]["port"] == "tcp-comm"

    template = {"spec": {"type": "LoadBalancer", "selector": {"app": "wrong"}}, "metadata": {"labels": {"x": "y"}}}
    service = pods.scheduler_service(template, cluster="c", namespace="ns", owner=OWNER)
    assert service["kind"] == "Service" and service["metadata"]["name"] == naming.scheduler_name("c")
    assert service["spec"]["selector"] == naming.scheduler_selector("c") and service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["ownerReferences"] == [OWNER]
    assert status.service_port(service, naming.SCHEDULER_PORT_NAME) == 8786
    assert status.service_port(service, "nope") is None


def test_lease_preload_is_a_text_preload() -> None:
    text = pods.lease_preload(2, 60)
    assert " " in text and "\n" in text  # distributed treats such a preload as module source, not a name
    namespace: dict = {}
    exec(compile(text, "lease", "exec"), namespace)
    assert namespace["TIMEOUT"] == 2.0 and namespace["FIRST"] == 60.0 and callable(namespace["dask_setup"])
    assert pods.LEASE_OP in text


def test_add_env_appends_to_the_first_container() -> None:
    pod = pods.add_env(make_pod_spec("img", env={"A": "1"}), {"B": 2})
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_a_null_field_of_a_legacy_template_is_absent() -> None:
    template = {"kind": "Pod", "metadata": {"labels": None, "annotations": None},
                "spec": {"tolerations": None, "affinity": None, "volumes": None, "containers": [
                    {"name": "dask", "image": "img", "args": None, "command": None, "env": None, "resources": None,
                     "ports": None, "volumeMounts": None}]}}
    pod = make_pod_from_dict(template)
    assert None not in pod["spec"]["containers"][0].values() and None not in pod["spec"].values()
    worker = clean_pod_template(pod)
    built = pods.worker_pod(worker, name="c-worker-0a1b2c3d4e", cluster="c", namespace="ns",
                            scheduler_address="tcp://c-scheduler:8786")
    container = built["spec"]["containers"][0]
    assert container["args"][-2:] == ["--name", "c-worker-0a1b2c3d4e"] and isinstance(container["env"], list)
    assert built["metadata"]["labels"][naming.CLUSTER_LABEL] == "c"
