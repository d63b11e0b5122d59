"""Pod Security admission's checks and labels, without a server: each check's words, the order a level reports
them in, the release each variant applies from, and how namespace labels are read."""

from __future__ import annotations

from typing import Any

import pytest

from localkube.apiserver.podsecurity import (
    BASELINE,
    RESTRICTED,
    LevelVersion,
    Policy,
    checks_for,
    describe,
    evaluate,
    policy_from_labels,
)

LATEST_RESTRICTED = LevelVersion(RESTRICTED)
LATEST_BASELINE = LevelVersion(BASELINE)
SAFE_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SAFE_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def spec(*containers: dict[str, Any], pod: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A pod spec whose containers c0, c1, ... have the given securityContexts."""
    out: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "nginx", "securityContext": ctx}
                                          for i, ctx in enumerate(containers or ({},))], **fields}
    if pod is not None:
        out["securityContext"] = pod
    return out


def restricted_ok(**fields: Any) -> dict[str, Any]:
    return spec(dict(SAFE_CONTAINER), pod=dict(SAFE_POD), **fields)


@pytest.mark.parametrize(("level", "pod_spec", "annotations", "expected"), [
    # The restricted level's everyday refusal, in kube-apiserver's order and words.
    (RESTRICTED, spec(), None,
     'allowPrivilegeEscalation != false (container "c0" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c0" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "c0" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c0" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
     '"Localhost")'),
    (RESTRICTED, restricted_ok(), None, ""),
    (RESTRICTED, spec(dict(SAFE_CONTAINER, runAsNonRoot=True, seccompProfile={"type": "Localhost"})), None, ""),
    (RESTRICTED, spec({}, {}, pod=dict(SAFE_POD)), None,
     'allowPrivilegeEscalation != false (containers "c0", "c1" must set '
     'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (containers "c0", "c1" must set '
     'securityContext.capabilities.drop=["ALL"])'),
    (RESTRICTED, spec(dict(SAFE_CONTAINER, runAsNonRoot=False), pod={"runAsNonRoot": False, "runAsUser": 0,
                                                                     "seccompProfile": {"type": "Unconfined"}}), None,
     'runAsNonRoot != true (pod and container "c0" must not set securityContext.runAsNonRoot=false), '
     'runAsUser=0 (pod must not set runAsUser=0), '
     'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    (RESTRICTED, spec(dict(SAFE_CONTAINER, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_TIME"]}),
                      pod=dict(SAFE_POD)), None,
     'unrestricted capabilities (container "c0" must not include "SYS_TIME" in securityContext.capabilities.add)'),
    (RESTRICTED, restricted_ok(volumes=[{"name": "data", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}},
                                        {"name": "n", "nfs": {"server": "x", "path": "/"}}]), None,
     'restricted volume types (volumes "h", "n" use restricted volume types "hostPath", "nfs")'),
    (RESTRICTED, restricted_ok(volumes=[{"name": "x", "someFutureSource": {}}]), None,
     'restricted volume types (volume "x" uses restricted volume type "unknown")'),
    (RESTRICTED, spec(dict(SAFE_CONTAINER, procMount="Unmasked"), pod=dict(SAFE_POD), hostUsers=False), None,
     'procMount (container "c0" must not set securityContext.procMount to "Unmasked")'),
    (RESTRICTED, spec({"privileged": True}, pod=dict(SAFE_POD), os={"name": "windows"}), None,
     'privileged (container "c0" must not set securityContext.privileged=true)'),  # Windows skips the Linux checks
    # Baseline checks, one by one.
    (BASELINE, spec(hostNetwork=True, hostPID=True, hostIPC=True), None,
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    (BASELINE, spec({"privileged": True}, {"privileged": False}, {"privileged": True}), None,
     'privileged (containers "c0", "c2" must not set securityContext.privileged=true)'),
    (BASELINE, spec({"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}), None,
     'non-default capabilities (container "c0" must not include "NET_ADMIN", "SYS_ADMIN" in '
     "securityContext.capabilities.add)"),
    (BASELINE, spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), None, 'hostPath volumes (volume "root")'),
    (BASELINE, {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080},
                                                       {"containerPort": 9, "hostPort": 80}]}]}, None,
     'hostPort (container "a" uses hostPorts 80, 8080)'),
    (BASELINE, {"containers": [{"name": "b", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}},
                               {"name": "a", "lifecycle": {"preStop": {"tcpSocket": {"host": "db", "port": 5}}}}]},
     None, 'probe or lifecycle host (containers "a", "b" use probe or lifecycle hosts "10.0.0.1", "db")'),
    (BASELINE, spec({"appArmorProfile": {"type": "Unconfined"}}), None,
     'forbidden AppArmor profile (container "c0" must not set AppArmor profile type to "Unconfined")'),
    (BASELINE, spec(), {"container.apparmor.security.beta.kubernetes.io/c0": "unconfined"},
     'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
     '"container.apparmor.security.beta.kubernetes.io/c0="unconfined"")'),
    (BASELINE, spec({"procMount": "Unmasked"}), None,
     'procMount (container "c0" must not set securityContext.procMount to "Unmasked")'),
    (BASELINE, spec({"procMount": "Unmasked"}, hostUsers=False), None, ""),  # 1.35: user namespaces may
    (BASELINE, spec({"seLinuxOptions": {"type": "spc_t", "user": "root"}}, pod={"seLinuxOptions": {"role": "r"}}),
     None, 'seLinuxOptions (pod and container "c0" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
           "user may not be set; role may not be set)"),
    (BASELINE, spec({"seLinuxOptions": {"type": "container_engine_t"}}), None, ""),
    (BASELINE, spec({"seccompProfile": {"type": "Unconfined"}}), None,
     'seccompProfile (container "c0" must not set securityContext.seccompProfile.type to "Unconfined")'),
    (BASELINE, spec(pod={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                     {"name": "net.ipv4.tcp_keepalive_time", "value": "1"},
                                     {"name": "vm.swappiness", "value": "1"}]}), None,
     "forbidden sysctls (kernel.msgmax, vm.swappiness)"),
    (BASELINE, spec({"windowsOptions": {"hostProcess": True}}, pod={"windowsOptions": {"hostProcess": True}}), None,
     'hostProcess (pod and container "c0" must not set securityContext.windowsOptions.hostProcess=true)'),
    # Several at once, in the level's order (ids sorted, baseline before restricted).
    (BASELINE, spec({"privileged": True}, hostNetwork=True, volumes=[{"name": "v", "hostPath": {"path": "/x"}}]),
     None, 'host namespaces (hostNetwork=true), hostPath volumes (volume "v"), '
           'privileged (container "c0" must not set securityContext.privileged=true)'),
    (BASELINE, spec(), None, ""),
])
def test_checks(level: str, pod_spec: dict[str, Any], annotations: dict[str, str] | None, expected: str) -> None:
    meta = {"name": "p", "annotations": annotations} if annotations else {"name": "p"}
    assert describe(evaluate(LevelVersion(level), meta, pod_spec)) == expected


def test_init_and_ephemeral_containers_are_checked_in_order() -> None:
    pod_spec = {"initContainers": [{"name": "init"}], "containers": [{"name": "main"}],
                "ephemeralContainers": [{"name": "debug"}]}
    failures = dict(evaluate(LATEST_RESTRICTED, {}, pod_spec))
    assert failures["allowPrivilegeEscalation != false"] == (
        'containers "init", "main", "debug" must set securityContext.allowPrivilegeEscalation=false')


@pytest.mark.parametrize(("minor", "restricted_ids"), [
    (35, ["allowPrivilegeEscalation", "capabilities_restricted", "procMount_restricted", "restrictedVolumes",
          "runAsNonRoot", "runAsUser", "seccompProfile_restricted"]),
    (22, ["allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot",
          "seccompProfile_restricted"]),
    (18, ["allowPrivilegeEscalation", "restrictedVolumes", "runAsNonRoot"]),
])
def test_which_checks_a_release_runs(minor: int, restricted_ids: list[str]) -> None:
    baseline = [cid for cid, _ in checks_for(BASELINE, minor)]
    restricted = [cid for cid, _ in checks_for(RESTRICTED, minor)]
    assert baseline == sorted(baseline)
    overridden = {"capabilities_baseline", "hostPathVolumes", "procMount", "seccompProfile_baseline"}
    assert restricted == [b for b in baseline if b not in overridden or b not in _replaced(minor)] + restricted_ids
    assert ("hostProbesAndHostLifecycle" in baseline) == (minor >= 34)


def _replaced(minor: int) -> set[str]:
    replaced = {"hostPathVolumes"}
    if minor >= 19:
        replaced.add("seccompProfile_baseline")
    if minor >= 22:
        replaced.add("capabilities_baseline")
    if minor >= 35:
        replaced.add("procMount")
    return replaced


def test_versions_pick_the_variant_in_force() -> None:
    capability = spec({"capabilities": {"add": ["SYS_ADMIN"]}}, pod=dict(SAFE_POD))
    old = dict(evaluate(LevelVersion(RESTRICTED, 21), {}, capability))
    assert "non-default capabilities" in old and "unrestricted capabilities" not in old
    sysctl = spec(pod={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]})
    assert evaluate(LevelVersion(BASELINE, 31), {}, sysctl) == [("forbidden sysctls", "net.ipv4.tcp_rmem")]
    assert evaluate(LevelVersion(BASELINE, 32), {}, sysctl) == []
    # Versions past the server's are the server's (latest); a server reporting 1.33 has no probe host check.
    probe = {"containers": [{"name": "a", "readinessProbe": {"tcpSocket": {"host": "h", "port": 1}}}]}
    assert evaluate(LevelVersion(BASELINE, 99), {}, probe) != []
    assert evaluate(LevelVersion(BASELINE), {}, probe, latest=33) == []
    annotated = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    assert evaluate(LevelVersion(BASELINE, 18), annotated, spec()) == [
        ("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')]
    assert evaluate(LevelVersion(BASELINE, 19), annotated, spec()) == []


@pytest.mark.parametrize(("labels", "policy", "errors"), [
    ({}, Policy(), []),
    ({"pod-security.kubernetes.io/enforce": "restricted"},
     Policy(enforce=LevelVersion(RESTRICTED), warn=LevelVersion(RESTRICTED)), []),  # enforce also warns
    ({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30",
      "pod-security.kubernetes.io/warn": "restricted"},
     Policy(enforce=LevelVersion(BASELINE, 30), warn=LevelVersion(RESTRICTED)), []),
    ({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30",
      "pod-security.kubernetes.io/warn-version": "v1.25"},
     Policy(enforce=LevelVersion(BASELINE, 30), warn=LevelVersion(BASELINE, 25)), []),
    ({"pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/audit-version": "latest"},
     Policy(audit=LevelVersion(RESTRICTED)), []),
    ({"pod-security.kubernetes.io/enforce": "strict"}, Policy(enforce=LevelVersion(RESTRICTED)),
     ['metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, '
      "baseline, restricted"]),
    ({"pod-security.kubernetes.io/warn": "Baseline", "pod-security.kubernetes.io/warn-version": "1.25"}, Policy(),
     ['metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "Baseline": must be one of privileged, '
      "baseline, restricted",
      'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.25": must be "latest" or "v1.x"']),
    ({"pod-security.kubernetes.io/enforce-version": "v1.01"}, Policy(),
     ['metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "v1.01": must be "latest" or '
      '"v1.x"']),
])
def test_namespace_labels(labels: dict[str, str], policy: Policy, errors: list[str]) -> None:
    got, causes = policy_from_labels(labels)
    assert got == policy
    assert [f"{c['field']}: {c['message']}" for c in causes] == errors


def test_level_version_names() -> None:
    assert str(LevelVersion(RESTRICTED)) == "restricted:latest"
    assert str(LevelVersion(BASELINE, 24)) == "baseline:v1.24"
