"""The Helm chart rendered by Helm's own engine (a `helm` binary or helm-python-sdk), for several sets of values.

Skipped without an engine; tests/unit/test_deploy.py covers the committed manifests either way.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy.render_module import load
from tests.unit.test_deploy import OPERATOR_CLUSTER_RULES, OPERATOR_NAMESPACED_RULES, aggregated, rule_triples

render = load()
HA_AND_METRICS = {"Service", "PodDisruptionBudget"}  # the metrics Service and the replicas' budget, by default
MONITORS = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                        "podMonitor": {"enabled": True, "interval": "15s"}}}
ENGINE = render.engine_name()
pytestmark = pytest.mark.skipif(ENGINE is None, reason="no Helm engine (helm on PATH or pip install helm-python-sdk)")


def rendered(values: dict[str, Any] | None = None, namespace: str = "ops") -> dict[str, dict[str, Any]]:
    """{kind: object} of one render's operator objects (each kind appears once; the ClusterRoles aggregated into
    Kubernetes' user-facing roles are left out: see aggregated_roles)."""
    objects = [obj for obj in render.objects(render.render_chart(values, release="dk", namespace=namespace))
               if not aggregated(obj)]
    by_kind = {obj["kind"]: obj for obj in objects}
    assert len(by_kind) == len(objects)
    return by_kind


def aggregated_roles(values: dict[str, Any] | None = None) -> list[str]:
    return sorted(obj["metadata"]["name"] for obj in render.objects(render.render_chart(values, release="dk",
                                                                                         namespace="ops"))
                  if aggregated(obj))


def test_edit_and_view_roles_follow_the_rbac_values() -> None:
    assert aggregated_roles() == ["dk-dask-kube-operator-edit", "dk-dask-kube-operator-view"]
    assert aggregated_roles({"rbac": {"aggregateToDefaultRoles": False}}) == []
    assert aggregated_roles({"rbac": {"cluster": False}}) == []  # cluster-scoped: not in single-namespace mode
    assert aggregated_roles({"rbac": {"create": False}}) == []


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_committed_files_are_up_to_date() -> None:
    stale = [str(path) for path, text in render.expected_files(ENGINE).items()
             if not path.exists() or path.read_text() != text]
    assert not stale, "run `python deploy/render.py`"


def test_chart_lints_clean() -> None:
    if ENGINE == "helm":
        proc = subprocess.run([shutil.which("helm") or "helm", "lint", "--strict", str(render.CHART)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return
    import helm_python

    for values in ({}, {"rbac": {"cluster": False}}, MONITORS, {"leaderElection": {"enabled": False}, "replicas": 1,
                                                                 "podDisruptionBudget": {"enabled": False},
                                                                 "metrics": {"enabled": False}}):
        report = helm_python.lint(str(render.CHART), values, strict=True, namespace="ops")
        assert not report["errors"], report
        # Severity 1 is "info" (e.g. "icon is recommended"); nothing worse.
        assert all(message["severity"] <= 1 for message in report["messages"]), report


def test_defaults_cluster_wide() -> None:
    objects = rendered()
    assert set(objects) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", *HA_AND_METRICS}
    assert rule_triples(objects["ClusterRole"]["rules"]) == OPERATOR_CLUSTER_RULES
    assert objects["ClusterRoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "dk-dask-kube-operator",
                                                          "namespace": "ops"}]
    assert container(objects)["args"][0] == "--all-namespaces"


def test_single_namespace_mode_uses_a_role() -> None:
    for watch in ([], ["ops"]):
        objects = rendered({"rbac": {"cluster": False}, "watchNamespaces": watch})
        assert set(objects) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", *HA_AND_METRICS}
        assert objects["Role"]["metadata"]["namespace"] == "ops"
        assert rule_triples(objects["Role"]["rules"]) == OPERATOR_NAMESPACED_RULES
        assert objects["RoleBinding"]["roleRef"]["kind"] == "Role"
        args = container(objects)["args"]
        assert "--namespace=ops" in args and "--all-namespaces" not in args


def test_single_namespace_mode_refuses_other_namespaces() -> None:
    for watch in (["other"], ["ops", "other"]):
        with pytest.raises(RuntimeError, match=r"rbac\.cluster=false"):
            render.render_chart({"rbac": {"cluster": False}, "watchNamespaces": watch}, namespace="ops")


def test_watch_namespaces_list() -> None:
    args = container(rendered({"watchNamespaces": ["team-a", "team-b"]}))["args"]
    assert args[:2] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--all-namespaces" not in args


@pytest.mark.parametrize(("level", "flag"), [("warning", None), ("info", "--verbose"), ("debug", "--debug")])
def test_log_level(level: str, flag: str | None) -> None:
    args = container(rendered({"logLevel": level}))["args"]
    assert [a for a in args if a in ("--verbose", "--debug")] == ([flag] if flag else [])


def test_scheduler_disruption_budget_value_reaches_the_operator() -> None:
    env = container(rendered({"schedulerDisruptionBudget": True}))["env"]
    assert {"name": "DASK_KUBERNETES__OPERATOR__SCHEDULER_DISRUPTION_BUDGET", "value": "true"} in env


def test_bad_log_level_fails() -> None:
    with pytest.raises(RuntimeError, match="logLevel"):
        render.render_chart({"logLevel": "loud"})


def test_pod_placement_env_and_resources() -> None:
    values = {
        "extraEnv": [{"name": "DASK_KUBERNETES__RESOURCE_TIMEOUT", "value": "120"}],
        "extraArgs": ["--standalone"],
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
        # Helm merges maps into the defaults: give limits too, or `limits: null` to drop them.
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "image": {"repository": "example.org/op", "tag": "v1"},
        "podAnnotations": {"a": "b"},
        "priorityClassName": "system-cluster-critical",
        "volumes": [{"name": "extra", "emptyDir": {}}],
        "volumeMounts": [{"name": "extra", "mountPath": "/extra"}],
    }
    objects = rendered(values)
    pod = objects["Deployment"]["spec"]["template"]
    spec = pod["spec"]
    box = container(objects)
    assert box["env"][2:] == values["extraEnv"]  # after the pod's own name and the scheduler budget default
    assert box["env"][1] == {"name": "DASK_KUBERNETES__OPERATOR__SCHEDULER_DISRUPTION_BUDGET", "value": "false"}
    assert box["args"][-1] == "--standalone"
    assert box["resources"] == values["resources"]
    assert box["image"] == "example.org/op:v1"
    assert box["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, *values["volumeMounts"]]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}, *values["volumes"]]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert spec[key] == values[key], key
    assert pod["metadata"]["annotations"] == {"a": "b"}


def test_existing_service_account_and_no_rbac() -> None:
    objects = rendered({"serviceAccount": {"create": False, "name": "ops-sa"}, "rbac": {"create": False}})
    assert set(objects) == {"Deployment", *HA_AND_METRICS}
    assert objects["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"


def test_two_replicas_elect_a_leader_and_keep_one_through_disruptions() -> None:
    objects = rendered()
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 2 and "strategy" not in deployment  # rolling: standbys may overlap
    args = container(objects)["args"]
    assert {"--leader-elect", "--lease-name=dk-dask-kube-operator", "--lease-namespace=ops"} <= set(args)
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container(objects)["env"]
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["PodDisruptionBudget"]["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    spread = deployment["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert spread["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["labelSelector"] == {
        "matchLabels": selector}


def test_without_leader_election_one_replica_and_recreate() -> None:
    objects = rendered({"leaderElection": {"enabled": False}, "replicas": 1, "podDisruptionBudget": {"enabled": False}})
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    assert "affinity" not in deployment["template"]["spec"] and "PodDisruptionBudget" not in objects
    assert not any(a.startswith("--lease") or a == "--leader-elect" for a in container(objects)["args"])
    with pytest.raises(RuntimeError, match=r"leaderElection\.enabled"):
        render.render_chart({"leaderElection": {"enabled": False}})  # two replicas, nobody elected: refused


def test_metrics_port_service_and_off_switch() -> None:
    objects = rendered({"metrics": {"port": 9100}})
    assert "--metrics-port=9100" in container(objects)["args"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container(objects)["ports"]
    service = objects["Service"]
    assert service["metadata"]["name"] == "dk-dask-kube-operator-metrics"
    assert service["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    off = rendered({"metrics": {"enabled": False}})
    assert "Service" not in off and not any(a.startswith("--metrics-port") for a in container(off)["args"])
    assert [p["name"] for p in container(off)["ports"]] == ["healthz"]
    with pytest.raises(RuntimeError, match=r"metrics\.enabled"):
        render.render_chart({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})


def test_service_monitor_and_pod_monitor_are_off_by_default_and_select_the_right_targets() -> None:
    assert not {"ServiceMonitor", "PodMonitor"} & set(rendered())
    objects = rendered(MONITORS)
    monitor = objects["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= objects["Service"]["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    pods = objects["PodMonitor"]["spec"]
    assert pods["selector"] == {"matchExpressions": [{"key": "dask.org/component", "operator": "In",
                                                      "values": ["scheduler", "worker"]}]}
    assert pods["namespaceSelector"] == {"any": True}
    (endpoint,) = pods["podMetricsEndpoints"]
    assert endpoint["port"] == "http-dashboard" and endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_dask_org_cluster_name"], "targetLabel": "dask_cluster"} in \
        endpoint["relabelings"]
    scoped = rendered({**MONITORS, "watchNamespaces": ["team-a", "team-b"]})
    assert scoped["PodMonitor"]["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
