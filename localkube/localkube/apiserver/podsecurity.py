"""Pod Security admission: the Pod Security Standards a namespace's `pod-security.kubernetes.io/*` labels ask for.

A namespace labelled `pod-security.kubernetes.io/enforce: baseline|restricted` refuses pods that break that level
with kube-apiserver's 403 (`pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`); `warn` adds a
`Warning` header (kubectl prints `Warning: would violate PodSecurity ...`) to pod writes and to writes of workloads
whose pod template breaks it (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, PodTemplates).
Without a `warn` label the enforce level also warns, as on a real server. `audit` is parsed and validated but
writes no audit annotations (LocalKube keeps no audit log). `*-version` labels pick the checks of a release
(`v1.X`, or `latest`: the version LocalKube reports); messages name it (`restricted:v1.25`).

The checks are the table `CHECKS`: one row per check of the standards, with its level, the release each variant
applies from, and the check, whose reason and detail are kube-apiserver's words. A level's checks run in the real
order (baseline ids sorted, then restricted ids sorted; a restricted check replaces the baseline checks it
overrides), and every failure is reported, joined by ", ". Pod updates are only checked when an image changes.
Namespace labels are validated on create and update (`Invalid value: "x": must be one of privileged, baseline,
restricted`), and tightening a namespace's enforce level warns about the existing pods that break it. No
exemptions are configured (as in kube-apiserver's default configuration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localkube.apiserver.core import NAMESPACE_KEY, POD_KEY, ApiCore
from localkube.apiserver.errors import forbidden, invalid
from localkube.apiserver.validation import go_quote, warning_header

Obj = Mapping[str, Any]
PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
# Where each workload kind keeps its pod template.
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "podtemplates"): ("template",),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


# --------------------------------------------------------------------------- levels, versions, labels


@dataclass(frozen=True)
class LevelVersion:
    level: str
    minor: int | None = None  # None: latest

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.minor is None else f'v1.{self.minor}'}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)


def _parse_version(text: str) -> int | None:
    """The minor of `v1.X`; None for `latest`; ValueError otherwise."""
    if text == "latest":
        return None
    minor = text[3:] if text.startswith("v1.") else ""
    if not minor.isdigit() or (len(minor) > 1 and minor[0] == "0"):
        raise ValueError('must be "latest" or "v1.x"')
    return int(minor)


def policy_from_labels(labels: Mapping[str, str] | None) -> tuple[Policy, list[dict[str, str]]]:
    """The namespace's policy and the 422 causes of its invalid labels. A bad enforce level enforces
    `restricted` (fail closed), a bad warn or audit level is `privileged` (fail open), a bad version `latest`."""
    labels = labels or {}
    found: dict[str, LevelVersion] = {}
    causes: list[dict[str, str]] = []
    for mode in MODES:
        level, minor = PRIVILEGED, None
        for label, text in ((PREFIX + mode, labels.get(PREFIX + mode)),
                            (f"{PREFIX}{mode}-version", labels.get(f"{PREFIX}{mode}-version"))):
            if text is None:
                continue
            if label == PREFIX + mode:
                if text in LEVELS:
                    level = text
                    continue
                level, why = (RESTRICTED if mode == "enforce" else PRIVILEGED), "must be one of " + ", ".join(LEVELS)
            else:
                try:
                    minor = _parse_version(text)
                    continue
                except ValueError as err:
                    why = str(err)
            causes.append({"reason": "FieldValueInvalid", "field": f"metadata.labels[{label}]",
                           "message": f"Invalid value: {go_quote(text)}: {why}"})
        found[mode] = LevelVersion(level, minor)
    warn = found["warn"]
    enforce_level_ok = labels.get(PREFIX + "enforce") in LEVELS
    if PREFIX + "warn" not in labels and enforce_level_ok and _rank(found["enforce"].level) > _rank(warn.level):
        # Without a warn label, the enforce level also warns (for workloads, whose pods it would refuse).
        minor = warn.minor if f"{PREFIX}warn-version" in labels else found["enforce"].minor
        warn = LevelVersion(found["enforce"].level, minor)
    return Policy(found["enforce"], found["audit"], warn), causes


def _rank(level: str) -> int:
    return LEVELS.index(level)


# --------------------------------------------------------------------------- helpers for the checks


def _quote(items: Sequence[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _named(noun: str, names: Sequence[str]) -> str:
    """`container "a"` or `containers "a", "b"`."""
    return f"{_plural(noun, noun + 's', len(names))} {_quote(names)}"


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers, as the admission visits them."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or ()


def _ctx(obj: Obj) -> Obj:
    return obj.get("securityContext") or {}


def _windows(spec: Obj) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


def _user_namespace(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


Result = tuple[str, str] | None  # (reason, detail) of a failed check
CheckFn = Callable[[Obj, Obj], Result]


def _unless(skip: Callable[[Obj], bool], check: CheckFn) -> CheckFn:
    """`check`, passing pods for which `skip(spec)` holds (Windows pods, pods in a user namespace)."""
    return lambda meta, spec: None if skip(spec) else check(meta, spec)


# --------------------------------------------------------------------------- baseline checks


def host_namespaces(meta: Obj, spec: Obj) -> Result:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(shared)) if shared else None


def privileged(meta: Obj, spec: Obj) -> Result:
    bad = [c["name"] for c in _containers(spec) if _ctx(c).get("privileged")]
    return ("privileged", f"{_named('container', bad)} must not set securityContext.privileged=true") if bad else None


BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def baseline_capabilities(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    added: set[str] = set()
    for c in _containers(spec):
        extra = {str(cap) for cap in (_ctx(c).get("capabilities") or {}).get("add") or ()} - BASELINE_CAPABILITIES
        if extra:
            bad.append(c["name"])
            added |= extra
    if not bad:
        return None
    return ("non-default capabilities",
            f"{_named('container', bad)} must not include {_quote(sorted(added))} in securityContext.capabilities.add")


def host_path_volumes(meta: Obj, spec: Obj) -> Result:
    bad = [v.get("name", "") for v in spec.get("volumes") or () if v.get("hostPath") is not None]
    return ("hostPath volumes", _named("volume", bad)) if bad else None


def host_ports(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = {str(p["hostPort"]) for p in c.get("ports") or () if p.get("hostPort")}
        if used:
            bad.append(c["name"])
            ports |= used
    if not bad:
        return None
    return ("hostPort", f"{_named('container', bad)} {_plural('uses', 'use', len(bad))} "
                        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


def _hosts(handler: Obj | None) -> list[str]:
    handler = handler or {}
    return [h for h in ((handler.get("httpGet") or {}).get("host"), (handler.get("tcpSocket") or {}).get("host"))
            if h]


def probe_hosts(meta: Obj, spec: Obj) -> Result:
    bad: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        lifecycle = c.get("lifecycle") or {}
        found = [h for handler in (c.get("livenessProbe"), c.get("readinessProbe"), c.get("startupProbe"),
                                   lifecycle.get("postStart"), lifecycle.get("preStop")) for h in _hosts(handler)]
        if found:
            bad.add(c["name"])
            hosts |= set(found)
    if not bad:
        return None
    return ("probe or lifecycle host",
            f"{_named('container', sorted(bad))} {_plural('uses', 'use', len(bad))} "
            f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_quote(sorted(hosts))}")


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def apparmor(meta: Obj, spec: Obj) -> Result:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _ctx(spec).get("appArmorProfile")
    if pod_profile is not None and pod_profile.get("type") not in ("RuntimeDefault", "Localhost"):
        setters.append("pod")
        values.add(str(pod_profile.get("type") or ""))
    bad = []
    for c in _containers(spec):
        profile = _ctx(c).get("appArmorProfile")
        if profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            bad.append(c["name"])
            values.add(str(profile.get("type") or ""))
    if bad:
        setters.append(_named("container", bad))
    annotations = sorted(f"{k}={go_quote(str(v))}" for k, v in (meta.get("annotations") or {}).items()
                         if k.startswith(APPARMOR_ANNOTATION) and v and v != "runtime/default"
                         and not str(v).startswith("localhost/"))
    listed = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(listed)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(listed)}")


def proc_mount(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        mount = _ctx(c).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(c["name"])
            kinds.add(str(mount))
    if not bad:
        return None
    return ("procMount",
            f"{_named('container', bad)} must not set securityContext.procMount to {_quote(sorted(kinds))}")


def _selinux(allowed_types: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad_types: set[str] = set()
        user = role = False

        def forbidden_options(options: Obj | None) -> bool:
            nonlocal user, role
            if options is None:
                return False
            bad = False
            if str(options.get("type") or "") not in allowed_types:
                bad_types.add(str(options.get("type") or ""))
                bad = True
            if options.get("user"):
                user = bad = True
            if options.get("role"):
                role = bad = True
            return bad

        setters = ["pod"] if forbidden_options(_ctx(spec).get("seLinuxOptions")) else []
        bad = [c["name"] for c in _containers(spec) if forbidden_options(_ctx(c).get("seLinuxOptions"))]
        if bad:
            setters.append(_named("container", bad))
        if not setters:
            return None
        data = [f"{_plural('type', 'types', len(bad_types))} {_quote(sorted(bad_types))}"] if bad_types else []
        data += ["user may not be set"] if user else []
        data += ["role may not be set"] if role else []
        return ("seLinuxOptions",
                f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}")

    return check


SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp_annotations(meta: Obj, spec: Obj) -> Result:
    """Before 1.19 the profile was set by annotations."""
    annotations = meta.get("annotations") or {}
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION + c["name"] for c in _containers(spec)]
    bad = sorted({f"{k}={go_quote(str(annotations[k]))}" for k in keys if k in annotations
                  and annotations[k] not in ("runtime/default", "docker/default")
                  and not str(annotations[k]).startswith("localhost/")})
    if not bad:
        return None
    return ("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} {', '.join(bad)}")


def _seccomp(require: bool) -> CheckFn:
    """The profile type must be RuntimeDefault or Localhost where set; `require`: set on the pod or every container."""

    def valid(ctx: Obj) -> bool | None:
        profile = ctx.get("seccompProfile")
        return None if profile is None else profile.get("type") in ("RuntimeDefault", "Localhost")

    def check(meta: Obj, spec: Obj) -> Result:
        setters: list[str] = []
        values: set[str] = set()
        pod_ok = valid(_ctx(spec))
        if pod_ok is False:
            setters.append("pod")
            values.add(str(_ctx(spec)["seccompProfile"].get("type") or ""))
        explicit, implicit = [], []
        for c in _containers(spec):
            ok = valid(_ctx(c))
            if ok is False:
                explicit.append(c["name"])
                values.add(str(_ctx(c)["seccompProfile"].get("type") or ""))
            elif ok is None and not pod_ok:
                implicit.append(c["name"])
        if explicit:
            setters.append(_named("container", explicit))
        if setters:
            return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                                      f"{_quote(sorted(values))}")
        if require and implicit:
            return ("seccompProfile", f"pod or {_named('container', implicit)} must set "
                                      'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
        return None

    return check


SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                         "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                               "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad = [str(s.get("name")) for s in _ctx(spec).get("sysctls") or () if s.get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def host_process(meta: Obj, spec: Obj) -> Result:
    def on(ctx: Obj) -> bool:
        return bool((ctx.get("windowsOptions") or {}).get("hostProcess"))

    setters = ["pod"] if on(_ctx(spec)) else []
    bad = [c["name"] for c in _containers(spec) if on(_ctx(c))]
    if bad:
        setters.append(_named("container", bad))
    if not setters:
        return None
    return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# --------------------------------------------------------------------------- restricted checks


def privilege_escalation(meta: Obj, spec: Obj) -> Result:
    bad = [c["name"] for c in _containers(spec) if _ctx(c).get("allowPrivilegeEscalation") is not False]
    return ("allowPrivilegeEscalation != false",
            f"{_named('container', bad)} must set securityContext.allowPrivilegeEscalation=false") if bad else None


def restricted_capabilities(meta: Obj, spec: Obj) -> Result:
    missing_drop: list[str] = []
    adding: list[str] = []
    added: set[str] = set()
    for c in _containers(spec):
        caps = _ctx(c).get("capabilities")
        if caps is None:
            missing_drop.append(c["name"])
            continue
        if "ALL" not in (caps.get("drop") or ()):
            missing_drop.append(c["name"])
        extra = {str(cap) for cap in caps.get("add") or ()} - {"NET_BIND_SERVICE"}
        if extra:
            adding.append(c["name"])
            added |= extra
    details = [f'{_named("container", missing_drop)} must set securityContext.capabilities.drop=["ALL"]'] \
        if missing_drop else []
    if adding:
        details.append(f"{_named('container', adding)} must not include {_quote(sorted(added))} in "
                       "securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


ALLOWED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                             "persistentVolumeClaim", "projected", "secret"})
NAMED_VOLUMES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
                 "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
                 "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")


def restricted_volumes(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    kinds: set[str] = set()
    for volume in spec.get("volumes") or ():
        if any(volume.get(source) is not None for source in ALLOWED_VOLUMES):
            continue
        bad.append(volume.get("name", ""))
        kinds.add(next((source for source in NAMED_VOLUMES if volume.get(source) is not None), "unknown"))
    if not bad:
        return None
    return ("restricted volume types",
            f"{_named('volume', bad)} {_plural('uses', 'use', len(bad))} "
            f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_quote(sorted(kinds))}")


def run_as_non_root(meta: Obj, spec: Obj) -> Result:
    pod_value = _ctx(spec).get("runAsNonRoot")
    setters = ["pod"] if pod_value is False else []
    explicit = [c["name"] for c in _containers(spec) if _ctx(c).get("runAsNonRoot") is False]
    implicit = [c["name"] for c in _containers(spec) if _ctx(c).get("runAsNonRoot") is None and pod_value is not True]
    if explicit:
        setters.append(_named("container", explicit))
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true",
                f"pod or {_named('container', implicit)} must set securityContext.runAsNonRoot=true")
    return None


def run_as_user(meta: Obj, spec: Obj) -> Result:
    setters = ["pod"] if _ctx(spec).get("runAsUser") == 0 else []
    bad = [c["name"] for c in _containers(spec) if _ctx(c).get("runAsUser") == 0]
    if bad:
        setters.append(_named("container", bad))
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Check:
    """One check of the standards: its id, level, and the variants by the minor release they apply from."""

    id: str
    level: str
    versions: tuple[tuple[int, CheckFn], ...]
    overrides: tuple[str, ...] = ()  # baseline checks a restricted check replaces

    def at(self, minor: int) -> CheckFn | None:
        """The variant in force at release 1.`minor`, or None before the check existed."""
        found = None
        for since, check in self.versions:
            if since <= minor:
                found = check
        return found


def _not_windows(check: CheckFn) -> CheckFn:
    return _unless(_windows, check)


def _not_user_namespace(check: CheckFn) -> CheckFn:
    return _unless(_user_namespace, check)


CHECKS: tuple[Check, ...] = (
    Check("hostNamespaces", BASELINE, ((0, host_namespaces),)),
    Check("privileged", BASELINE, ((0, privileged),)),
    Check("capabilities_baseline", BASELINE, ((0, baseline_capabilities),)),
    Check("hostPathVolumes", BASELINE, ((0, host_path_volumes),)),
    Check("hostPorts", BASELINE, ((0, host_ports),)),
    Check("hostProbesAndHostLifecycle", BASELINE, ((34, probe_hosts),)),
    Check("appArmorProfile", BASELINE, ((0, apparmor),)),
    Check("procMount", BASELINE, ((0, proc_mount), (35, _not_user_namespace(proc_mount)))),
    Check("seLinuxOptions", BASELINE, ((0, _selinux(SELINUX_TYPES)),
                                       (31, _selinux(SELINUX_TYPES | {"container_engine_t"})))),
    Check("seccompProfile_baseline", BASELINE, ((0, seccomp_annotations), (19, _seccomp(require=False)))),
    Check("sysctls", BASELINE, ((0, _sysctls(SYSCTLS_1_0)), (27, _sysctls(SYSCTLS_1_27)),
                                (29, _sysctls(SYSCTLS_1_29)), (32, _sysctls(SYSCTLS_1_32)))),
    Check("windowsHostProcess", BASELINE, ((0, host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED,
          ((8, privilege_escalation), (25, _not_windows(privilege_escalation)))),
    Check("capabilities_restricted", RESTRICTED,
          ((22, restricted_capabilities), (25, _not_windows(restricted_capabilities))), ("capabilities_baseline",)),
    Check("procMount_restricted", RESTRICTED, ((35, proc_mount),), ("procMount",)),
    Check("restrictedVolumes", RESTRICTED, ((0, restricted_volumes),), ("hostPathVolumes",)),
    Check("runAsNonRoot", RESTRICTED, ((0, run_as_non_root), (35, _not_user_namespace(run_as_non_root)))),
    Check("runAsUser", RESTRICTED, ((23, run_as_user), (35, _not_user_namespace(run_as_user)))),
    Check("seccompProfile_restricted", RESTRICTED,
          ((19, _seccomp(require=True)), (25, _not_windows(_seccomp(require=True)))), ("seccompProfile_baseline",)),
)
NEWEST = max(since for check in CHECKS for since, _ in check.versions)


def checks_for(level: str, minor: int) -> list[tuple[str, CheckFn]]:
    """The checks a level runs at release 1.`minor`, in kube-apiserver's order."""
    if level == PRIVILEGED:
        return []
    present = {c.id: (c, fn) for c in CHECKS if (fn := c.at(minor)) is not None
               and (c.level == BASELINE or level == RESTRICTED)}
    overridden = {o for c, _ in present.values() for o in c.overrides}
    ordered = sorted((c.level == RESTRICTED, c.id) for c, _ in present.values() if c.id not in overridden)
    return [(cid, present[cid][1]) for _, cid in ordered]


def evaluate(lv: LevelVersion, meta: Obj, spec: Obj, latest: int = NEWEST) -> list[tuple[str, str]]:
    """The (reason, detail) of every check `meta` and `spec` fail at `lv`; `latest` is the server's minor."""
    minor = latest if lv.minor is None else min(lv.minor, latest)
    failures = []
    for _id, check in checks_for(lv.level, minor):
        result = check(meta, spec)
        if result is not None:
            failures.append((result[0] or "unknown forbidden reason", result[1]))
    return failures


def describe(failures: Sequence[tuple[str, str]]) -> str:
    """`reason (detail), reason (detail)`, as the refusal and the warning spell them."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in failures)


# --------------------------------------------------------------------------- admission


def _template(obj: Obj, path: tuple[str, ...]) -> Obj | None:
    cur: Any = obj
    for part in path:
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    return cur if isinstance(cur, Mapping) else None


def _images_changed(pod: Obj, old: Obj) -> bool:
    """Pod updates are checked only when they could change what runs: containers added or images changed."""
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for field in ("containers", "initContainers"):
        new, before = spec.get(field) or [], old_spec.get(field) or []
        if len(new) != len(before) or any(a.get("image") != b.get("image") for a, b in zip(new, before, strict=True)):
            return True
    before_ephemeral = {c.get("name"): c.get("image") for c in old_spec.get("ephemeralContainers") or ()}
    return any(before_ephemeral.get(c.get("name"), object()) != c.get("image")
               for c in spec.get("ephemeralContainers") or ())


class PodSecurity:
    """The admission plugin: pods are enforced and warned about, workload templates warned about."""

    def __init__(self, core: ApiCore, latest: int) -> None:
        self.core = core
        self.latest = min(latest, NEWEST)

    def _policy(self, namespace: str) -> Policy:
        ns = self.core.store.get(NAMESPACE_KEY, "", namespace)
        return policy_from_labels((ns or {}).get("metadata", {}).get("labels"))[0]

    def admit_pod(self, pod: Obj, old: Obj | None) -> list[str]:
        if old is not None and not _images_changed(pod, old):
            return []
        meta = pod.get("metadata") or {}
        policy = self._policy(meta.get("namespace", ""))
        spec = pod.get("spec") or {}
        failures = evaluate(policy.enforce, meta, spec, self.latest)
        if failures:
            raise forbidden("pods", meta.get("name", ""),
                            f"violates PodSecurity {go_quote(str(policy.enforce))}: {describe(failures)}")
        return self._warn(policy, meta, spec)

    def admit_workload(self, path: tuple[str, ...], obj: Obj) -> list[str]:
        template = _template(obj, path)
        if template is None:
            return []
        policy = self._policy((obj.get("metadata") or {}).get("namespace", ""))
        return self._warn(policy, template.get("metadata") or {}, template.get("spec") or {})

    def _warn(self, policy: Policy, meta: Obj, spec: Obj) -> list[str]:
        failures = evaluate(policy.warn, meta, spec, self.latest)
        if not failures:
            return []
        return [warning_header(f"would violate PodSecurity {go_quote(str(policy.warn))}: {describe(failures)}")]

    def admit_namespace(self, ns: Obj, old: Obj | None) -> list[str]:
        """Labels must be valid (unless an update leaves the same invalid labels); a stricter enforce level warns
        about the namespace's pods that break it."""
        meta = ns.get("metadata") or {}
        policy, causes = policy_from_labels(meta.get("labels"))
        old_policy, old_causes = policy_from_labels(((old or {}).get("metadata") or {}).get("labels"))
        if causes and (old is None or not old_causes or causes != old_causes):
            raise invalid("Namespace", meta.get("name", ""), list(causes))
        new, before = policy.enforce, old_policy.enforce
        if old is None or new == before or new.level == PRIVILEGED or (
                new.minor == before.minor and _rank(new.level) <= _rank(before.level)):
            return []
        return [warning_header(w) for w in self.existing_pod_warnings(meta.get("name", ""), new)]

    def existing_pod_warnings(self, namespace: str, enforce: LevelVersion) -> list[str]:
        """What kube-apiserver says of existing pods when a namespace's enforce level tightens: one line per
        distinct set of failed checks, naming the first pod by name and how many more share it."""
        pods = self.core.store.list(POD_KEY, namespace)
        by_reasons: dict[str, list[str]] = {}
        for pod in pods:
            failures = evaluate(enforce, pod.get("metadata") or {}, pod.get("spec") or {}, self.latest)
            if failures:
                by_reasons.setdefault(", ".join(r for r, _ in failures), []).append(pod["metadata"]["name"])
        if not by_reasons:
            return []
        lines = []
        for reasons, names in by_reasons.items():
            others = len(names) - 1
            more = "" if others == 0 else " (and 1 other pod)" if others == 1 else f" (and {others} other pods)"
            lines.append(f"{min(names)}{more}: {reasons}")
        return [f"existing pods in namespace {go_quote(namespace)} violate the new PodSecurity enforce level "
                f"{go_quote(str(enforce))}", *sorted(lines)]


def install(core: ApiCore, kubernetes_minor: int) -> PodSecurity:
    """Register the plugin's validating hooks (pods, namespaces, workload templates)."""
    plugin = PodSecurity(core, kubernetes_minor)
    core.validating.setdefault(POD_KEY, []).append(plugin.admit_pod)
    core.validating.setdefault(NAMESPACE_KEY, []).append(plugin.admit_namespace)
    for key, path in TEMPLATES.items():
        core.validating.setdefault(key, []).append(lambda obj, old, path=path: plugin.admit_workload(path, obj))
    return plugin
