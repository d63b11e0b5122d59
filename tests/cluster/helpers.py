"""Waiting helpers for the KubeCluster tests: conditions with deadlines, never fixed sleeps."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from localkube.testing import async_until, until


def wait_until(predicate: Callable[[], Any], within: float = 30, what: str = "condition") -> Any:
    return until(predicate, what, within)


async def async_wait_until(predicate: Callable[[], Awaitable[Any]], within: float = 30,
                           what: str = "condition") -> Any:
    return await async_until(predicate, what, within)


def run_in_pod(kubectl: Callable[..., Any], name: str, args: list[str], env: dict[str, str], within: float
               ) -> dict[str, str]:
    """Run a `python:3.11` pod as a notebook would be (in-cluster by KUBERNETES_SERVICE_HOST; LocalKube mounts no
    token, so a kubeconfig in `env` stands for the ServiceAccount's), wait for it to succeed, and return its log
    lines as {first word: rest}."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "notebook", "image": "python:3.11", "command": ["python", "-c", *args],
                        "env": [{"name": k, "value": v} for k, v in
                                {"KUBERNETES_SERVICE_HOST": "127.0.0.1", **env}.items()]}]}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))

    def finished() -> str | None:
        obj = json.loads(kubectl("get", "pod", name, "-o", "json").stdout)
        phase = (obj.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase: str = until(finished, f"pod {name} to finish", within=within,
                       explain=lambda: kubectl("logs", name, check=False).stdout)
    logs = kubectl("logs", name).stdout
    assert phase == "Succeeded", logs
    return dict(line.split(" ", 1) for line in logs.splitlines() if " " in line)
