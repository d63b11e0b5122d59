"""docs/migration.md accounts for every dask-kubernetes config key and Helm value (facts of its 2024-2025 releases:
`kubernetes.yaml` and the `dask-kubernetes-operator` chart's values.yaml), and for every key of dask_kube's own
config that dask-kubernetes did not have."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dask_kube import config

MIGRATION = Path(__file__).parents[2] / "docs" / "migration.md"

DASK_KUBERNETES_KEYS = [
    "name", "namespace", "env", "count.start", "count.max", "scheduler-service-type", "image", "resources",
    "worker-command", "port-forward-cluster-ip", "create-mode", "shutdown-on-close", "resource-timeout",
    "custom-cluster-spec", "scheduler-forward-port", "scheduler-jupyter", "host", "port", "idle-timeout",
    "deploy-mode", "interface", "protocol", "dashboard_address", "controller.worker-allocation.batch-size",
    "controller.worker-allocation.delay", "controller.events.enabled", "controller.events.level",
    "scheduler-service-wait-timeout", "scheduler-service-name-resolution-retries", "scheduler-service-template",
    "scheduler-pdb-template", "worker-template-path", "scheduler-template", "worker-template",
]
DASK_KUBERNETES_HELM_VALUES = [
    "image.name", "image.tag", "image.pullPolicy", "imagePullSecrets", "nameOverride", "fullnameOverride",
    "serviceAccount.create", "serviceAccount.annotations", "serviceAccount.name", "rbac.create", "rbac.cluster",
    "podAnnotations", "podSecurityContext", "securityContext", "resources", "volumes", "volumeMounts", "extraEnv",
    "nodeSelector", "tolerations", "affinity", "priorityClassName", "livenessProbe.timeoutSeconds", "kopfArgs",
    "metrics.scheduler", "metrics.worker", "workerAllocation.size", "workerAllocation.delay",
]


def _section(title: str) -> str:
    text = MIGRATION.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _first_cells(section: str) -> str:
    return "\n".join(line.split("|")[1] for line in section.splitlines() if line.startswith("| "))


def _named(name: str, cells: str) -> bool:
    """`name` in backquotes, alone or as `name`, `.rest` / `name.*` style shorthand."""
    head, _, tail = name.rpartition(".")
    return (f"`{name}`" in cells or f"`{name}.*`" in cells
            or (bool(head) and f"`{head}.{tail}`" in cells) or (bool(head) and f"`.{tail}`" in cells
                                                                  and f"`{head}." in cells))


def test_every_dask_kubernetes_config_key_is_in_the_table() -> None:
    cells = _first_cells(_section("Dask config keys"))
    assert [k for k in DASK_KUBERNETES_KEYS if not _named(k, cells)] == []


def test_every_dask_kubernetes_helm_value_is_in_the_table() -> None:
    cells = _first_cells(_section("Helm values"))
    assert [v for v in DASK_KUBERNETES_HELM_VALUES if not _named(v, cells)] == []


def test_every_key_of_ours_is_accounted_for() -> None:
    defaults = yaml.safe_load(config.DEFAULTS_FILE.read_text())["kubernetes"]
    section = _section("Dask config keys")
    missing = [key for key in defaults if key not in ("count",) and not re.search(rf"`{re.escape(key)}[`.]", section)]
    assert missing == []
