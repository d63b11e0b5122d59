"""Pod Security admission through the real kubectl: a namespace's `pod-security.kubernetes.io/*` labels refuse or
warn with kube-apiserver's words. Compliant pods carry LocalKube's simulate annotation (no process here)."""

from __future__ import annotations

import json
from typing import Any

ENFORCE, WARN = "pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/warn"
ROOT_POD_REFUSAL = (
    'pods "root" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
    '(container "root" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
    '(container "root" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
    '"root" must set securityContext.runAsNonRoot=true), runAsUser=0 (container "root" must not set runAsUser=0), '
    'seccompProfile (pod or container "root" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


def _pod(name: str, container_context: dict[str, Any], pod_context: dict[str, Any] | None = None,
         **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "annotations": {"localkube.dask.org/simulate": "true"}},
                       "spec": {"securityContext": pod_context or {}, **spec,
                                "containers": [{"name": name, "image": "registry.k8s.io/pause:3.9",
                                                "securityContext": container_context}]}})


def test_restricted_refuses_a_root_pod_and_accepts_a_compliant_one(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("label", "namespace", namespace, f"{ENFORCE}=restricted")
    refused = kubectl("apply", "-f", "-", input=_pod("root", {"runAsUser": 0}), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"Error from server (Forbidden): error when creating \"STDIN\": {ROOT_POD_REFUSAL}"
    compliant = _pod("safe", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                     {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
    done = kubectl("apply", "-f", "-", input=compliant)
    assert done.stdout.strip() == "pod/safe created" and "Warning" not in done.stderr

    # Workloads are not refused, but kubectl is told their pods would be (enforce also warns).
    created = kubectl("create", "deployment", "web", "--image=registry.k8s.io/pause:3.9")
    assert created.stderr.strip() == (
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container '
        '"pause" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container '
        '"pause" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "pause" '
        'must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "pause" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_baseline_refuses_privileged_and_host_network_and_warn_warns(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kubectl("label", "namespace", namespace, f"{ENFORCE}=baseline", f"{WARN}=restricted")
    privileged = kubectl("apply", "-f", "-", input=_pod("priv", {"privileged": True}), check=False)
    assert privileged.returncode == 1
    assert privileged.stderr.strip().endswith(
        'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "priv" must not set '
        "securityContext.privileged=true)")
    host = kubectl("apply", "-f", "-", input=_pod("host", {}, hostNetwork=True, hostPID=True), check=False)
    assert host.stderr.strip().endswith(
        'pods "host" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, '
        "hostPID=true)")

    # Allowed by baseline, short of restricted: created, with kubectl's Warning line.
    plain = kubectl("apply", "-f", "-", input=_pod("plain", {"allowPrivilegeEscalation": False,
                                                              "capabilities": {"drop": ["ALL"]}},
                                                    {"seccompProfile": {"type": "RuntimeDefault"}}))
    assert plain.stdout.strip() == "pod/plain created"
    assert plain.stderr.strip() == (
        'Warning: would violate PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "plain" '
        "must set securityContext.runAsNonRoot=true)")

    # Tightening enforce names the pods that would not be admitted any more.
    tightened = kubectl("label", "--overwrite", "namespace", namespace, f"{ENFORCE}=restricted")
    assert tightened.stderr.splitlines() == [
        f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        '"restricted:latest"', "Warning: plain: runAsNonRoot != true"]


def test_invalid_labels_are_refused(kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    bad = kubectl("label", "namespace", namespace, f"{ENFORCE}=strict", f"{ENFORCE}-version=1.30", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        f'The Namespace "{namespace}" is invalid: \n'
        f'* metadata.labels[{ENFORCE}]: Invalid value: "strict": must be one of privileged, baseline, restricted\n'
        f'* metadata.labels[{ENFORCE}-version]: Invalid value: "1.30": must be "latest" or "v1.x"')
    kubectl("label", "namespace", namespace, f"{ENFORCE}=baseline", f"{ENFORCE}-version=v1.30")
