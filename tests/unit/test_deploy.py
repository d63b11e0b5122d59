"""The operator's Helm chart, plain manifests and Dockerfile, checked without a Helm engine or a server."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from localkube.apiserver import podsecurity

from dask_kube.operator import crd_schemas
from tests.deploy.render_module import load
from tests.rbacdocs import documented_user_role

render = load()

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "dask-kube-operator"
MANIFESTS = ROOT / "deploy" / "manifests"

CUSTOM = ["daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"]


def _triples(groups: list[str], resources: list[str], verbs: list[str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g in groups for r in resources for v in verbs}


# The operator's needs, as (apiGroup, resource, verb); docs/rbac.md explains each.
OPERATOR_NAMESPACED_RULES = (
    _triples(["kubernetes.dask.org"], CUSTOM, ["get", "list", "watch", "create", "update", "patch", "delete"])
    | _triples(["kubernetes.dask.org"], [f"{r}/status" for r in CUSTOM], ["get", "update", "patch"])
    | _triples([""], ["pods"], ["get", "list", "watch", "create", "patch", "delete"])
    | _triples([""], ["pods/log"], ["get"])
    | _triples([""], ["services"], ["get", "list", "watch", "create", "patch", "delete"])
    | _triples([""], ["secrets"], ["get", "create"])
    | _triples(["policy"], ["poddisruptionbudgets"], ["get", "create", "delete"])
    | _triples(["networking.k8s.io"], ["networkpolicies"], ["get", "create", "delete"])
    | _triples(["", "events.k8s.io"], ["events"], ["get", "create", "patch"])
    | _triples(["coordination.k8s.io"], ["leases"], ["get", "create", "update"])
)
OPERATOR_CLUSTER_RULES = OPERATOR_NAMESPACED_RULES | (
    _triples([""], ["namespaces"], ["get", "list", "watch"])
    | _triples(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["get", "list", "watch"])
)


def rule_triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    triples: set[tuple[str, str, str]] = set()
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames / nonResourceURLs
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert all("/" not in group for group in rule["apiGroups"]), rule  # a group, never group/version
        triples |= _triples(rule["apiGroups"], rule["resources"], rule["verbs"])
    return triples


def manifest_objects() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


def aggregated(doc: dict[str, Any]) -> bool:
    return any(k.startswith(AGGREGATE) for k in doc["metadata"].get("labels") or {})


def operator_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's own ClusterRole (the others are aggregated into Kubernetes' user-facing roles)."""
    return one([d for d in docs if not aggregated(d)], "ClusterRole")


def helper_block(name: str) -> Any:
    """A `define` block of _helpers.tpl that is plain YAML (the RBAC rules), parsed."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'\{\{- define "dask-kube-operator\.' + name + r'" -\}\}\n(.*?)\{\{- end \}\}', text, re.S)
    assert match, name
    assert "{{" not in match.group(1)
    return yaml.safe_load(match.group(1))


@pytest.mark.parametrize("filename", sorted(crd_schemas.crds()))
def test_crd_copies_are_byte_identical_to_the_generated_ones(filename: str) -> None:
    generated = (crd_schemas.CRD_DIR / filename).read_bytes()
    assert (CHART / "crds" / filename).read_bytes() == generated, "run `python deploy/render.py`"
    assert (MANIFESTS / f"10-crd-{filename}").read_bytes() == generated, "run `python deploy/render.py`"


def test_no_stray_crd_copies() -> None:
    expected = set(crd_schemas.crds())
    assert {p.name for p in (CHART / "crds").iterdir()} == expected
    assert {p.name.removeprefix("10-crd-") for p in MANIFESTS.glob("10-crd-*")} == expected


def test_manifests_parse_and_name_every_object() -> None:
    docs = manifest_objects()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(["Namespace", "ServiceAccount", *["ClusterRole"] * 3, "ClusterRoleBinding", "Deployment",
                            "Service", "PodDisruptionBudget", *["CustomResourceDefinition"] * 4])
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == render.NAMESPACE, doc["metadata"]
    assert one(docs, "Namespace")["metadata"]["name"] == render.NAMESPACE


def test_manifests_carry_no_helm_residue() -> None:
    text = "\n".join(p.read_text() for p in MANIFESTS.glob("*.yaml"))
    assert "{{" not in text
    assert "helm.sh/chart" not in text and "managed-by: Helm" not in text
    # Files sort into apply order: the Namespace before anything that lives in it.
    assert sorted(p.name for p in MANIFESTS.glob("*.yaml"))[0] == "00-namespace.yaml"


def test_cluster_role_grants_exactly_the_operator_needs() -> None:
    role = operator_role(manifest_objects())
    assert rule_triples(role["rules"]) == OPERATOR_CLUSTER_RULES


def test_edit_and_view_roles_aggregate_the_dask_kinds() -> None:
    """Whoever holds admin or edit in a namespace may do everything KubeCluster does with the Dask kinds (the
    Role documented for users), and kubectl scale; view may read them."""
    roles = {doc["metadata"]["name"].rsplit("-", 1)[-1]: doc for doc in manifest_objects()
             if doc["kind"] == "ClusterRole" and aggregated(doc)}
    assert set(roles) == {"edit", "view"}
    labels = {name: {k.removeprefix(AGGREGATE) for k in role["metadata"]["labels"] if k.startswith(AGGREGATE)}
              for name, role in roles.items()}
    assert labels == {"edit": {"admin", "edit"}, "view": {"view"}}
    edit, view = rule_triples(roles["edit"]["rules"]), rule_triples(roles["view"]["rules"])
    documented = documented_user_role("ns", "sa")[0]["rules"]
    user = {t for t in rule_triples(documented) if t[0] == "kubernetes.dask.org"}
    assert user <= edit and ("kubernetes.dask.org", "daskclusters/scale", "patch") in edit
    assert {verb for _, _, verb in view} == {"get", "list", "watch"}
    assert {resource for _, resource, _ in view} == {resource for _, resource, _ in edit}


def test_namespaced_role_rules_are_the_namespaced_subset() -> None:
    """The Role (rbac.cluster=false) uses the namespacedRules block alone: no cluster-scoped resources (H5)."""
    assert rule_triples(helper_block("namespacedRules")) == OPERATOR_NAMESPACED_RULES
    cluster_only = rule_triples(helper_block("clusterRules"))
    assert {resource for _, resource, _ in cluster_only} == {"namespaces", "customresourcedefinitions"}
    role_template = (CHART / "templates" / "role.yaml").read_text()
    assert "namespacedRules" in role_template and "clusterRules" not in role_template


def test_bindings_point_at_the_service_account() -> None:
    docs = manifest_objects()
    account = one(docs, "ServiceAccount")["metadata"]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": operator_role(docs)["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": account["namespace"]}]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]


def test_deployment_is_hardened_and_probed() -> None:
    deployment = one(manifest_objects(), "Deployment")
    spec = deployment["spec"]
    # Two replicas, one leading: they may overlap, so the update strategy is the default rolling one.
    assert spec["replicas"] == 2 and "strategy" not in spec
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert "command" not in container  # the image's entrypoint, dask-kube-operator
    assert container["args"] == ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=8000",
                                 "--leader-elect", f"--lease-name={render.RELEASE}",
                                 f"--lease-namespace={render.NAMESPACE}", "--verbose"]
    assert container["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "DASK_KUBERNETES__OPERATOR__SCHEDULER_DISRUPTION_BUDGET", "value": "false"}]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["ports"] == [{"name": "healthz", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 8000, "protocol": "TCP"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_operator_pod_passes_restricted_in_a_namespace_that_enforces_it() -> None:
    objects = manifest_objects()
    template = one(objects, "Deployment")["spec"]["template"]
    level = podsecurity.LevelVersion(podsecurity.RESTRICTED)
    assert podsecurity.evaluate(level, template["metadata"], template["spec"]) == []
    labels = one(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_chart_metadata_and_image_follow_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2" and chart["name"] == "dask-kube-operator" and chart["type"] == "application"
    assert chart["appVersion"] == version
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])  # SemVer 2
    (container,) = one(manifest_objects(), "Deployment")["spec"]["template"]["spec"]["containers"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert container["image"] == f"{values['image']['repository']}:{version}"


def test_values_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["watchNamespaces"] == [] and values["rbac"] == {"create": True, "cluster": True,
                                                                  "aggregateToDefaultRoles": True}
    for key in ("extraEnv", "extraArgs", "tolerations", "volumes", "volumeMounts", "imagePullSecrets"):
        assert values[key] == [], key
    for key in ("nodeSelector", "affinity", "podAnnotations", "podLabels"):
        assert values[key] == {}, key
    assert values["logLevel"] in {"warning", "info", "debug"}


def test_dockerfile() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert 'ENTRYPOINT ["dask-kube-operator"]' in text
    assert 'CMD ["--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]' in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0")), users


def test_render_check_reports_an_out_of_date_crd_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`render.py --check` compares, never writes; a stale CRD copy is reported even without a Helm engine."""
    monkeypatch.setattr(render, "engine_name", lambda: None)
    stale = MANIFESTS / "10-crd-daskjob.yaml"
    files = render.expected_files(None)
    assert files[stale] == stale.read_text()
    monkeypatch.setattr(render, "GENERATED_CRDS", tmp_path)
    (tmp_path / "daskjob.yaml").write_text("changed\n")
    assert render.main(["--check"]) == 1
    assert stale.read_text() == (crd_schemas.CRD_DIR / "daskjob.yaml").read_text()


def test_kopf_scans_only_when_a_namespace_is_a_pattern() -> None:
    """Exact names leave kopf's namespace and CRD scans nothing to find (and a Role cannot allow them)."""
    from dask_kube.operator.main import exact_namespaces

    assert exact_namespaces(["solo"]) and exact_namespaces(["a", "b"])
    assert not exact_namespaces([])  # every namespace: kopf observes CRDs
    assert not exact_namespaces(["team-*"]) and not exact_namespaces(["a", "!b"])
