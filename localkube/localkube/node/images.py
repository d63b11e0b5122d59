"""What an image would give a container, when there is no image: its program, environment and working directory.

LocalKube runs a container's `command` + `args` directly in the current Python environment. An `ImageMapping` lets
images that match a pattern run with extra `PATH` entries and environment (another virtualenv, a different dask
version, ...) and says what their ENTRYPOINT and CMD are; well-known images have mappings built in (catalog.py).
Other images' entrypoints are unknown, so a container with no `command` runs `args[0]`.

Environment rules follow the kubelet: `envFrom` first, then `env` in order, each value `$(VAR)`-expanded against
the variables defined before it; `command` and `args` are expanded against the container's whole environment.
Only variables the pod spec defines take part in expansion, as on a real node where the image's variables do not.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from localkube.apiserver.validation import parse_quantity

Obj = dict[str, Any]
# (plural, namespace, name) -> object or None: how env resolution reads ConfigMaps and Secrets.
Lookup = Callable[[str, str, str], Obj | None]

# Variables a container inherits from the LocalKube process; everything else would leak the host's state.
INHERITED = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "PYTHONPATH", "VIRTUAL_ENV",
             "SSL_CERT_FILE", "SSL_CERT_DIR")
# Variables holding search paths: an addition is prepended instead of replacing the value.
PATH_LISTS = ("PATH", "PYTHONPATH")


@dataclass(frozen=True)
class ImageMapping:
    """Images matching `pattern` (fnmatch) run with `path` prepended to PATH and `env` added.

    `entrypoint` and `cmd` stand for the image's ENTRYPOINT and CMD, with the container runtime's rules: a
    container's `command` replaces the entrypoint (and drops the CMD), its `args` replace the CMD. So a manifest
    written for a real image (the operator's Deployment gives only `args`) runs unchanged.

    `directories` are those the image holds (image path -> a host directory with their initial contents): each
    container gets its own copy, with paths into them mapped (imagefs.py).
    """

    pattern: str
    path: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    directories: Mapping[str, str] = field(default_factory=dict)

    def matches(self, image: str) -> bool:
        return fnmatch.fnmatchcase(image, self.pattern)


def find_mapping(image: str, mappings: Sequence[ImageMapping]) -> ImageMapping | None:
    """The first mapping whose pattern matches `image` (order is the user's priority)."""
    return next((m for m in mappings if m.matches(image)), None)


class ConfigError(Exception):
    """The container cannot be created; `reason` becomes the waiting reason (CreateContainerConfigError, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- $(VAR) expansion -------------------------------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes variable expansion: `$(NAME)` is replaced when NAME is defined, `$$` is a literal `$`.

    Undefined references and incomplete ones are left as written, exactly like the kubelet's expansion package.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(env[name] if name in env else text[i:close + 1])
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def _resource_value(pod: Obj, container: Obj, ref: Obj) -> str:
    """`valueFrom.resourceFieldRef`: the limit or request divided by `divisor`, rounded up (node size if unset)."""
    target = container
    if ref.get("containerName"):
        target = next((c for c in pod["spec"].get("containers", []) if c.get("name") == ref["containerName"]),
                      container)
    resource = str(ref.get("resource", ""))
    section, _, name = resource.partition(".")
    resources = target.get("resources") or {}
    raw = (resources.get(section) or {}).get(name)
    if raw is None and section == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None:  # the kubelet falls back to node allocatable
        raw = (os.cpu_count() or 1) if name == "cpu" else _total_memory()
    try:
        divisor = parse_quantity(ref.get("divisor") or "1") or Decimal(1)
        return str(math.ceil(parse_quantity(raw) / divisor))
    except ValueError as err:
        raise ConfigError("CreateContainerConfigError", str(err))


# -- fieldRef ---------------------------------------------------------------------------------------------------


def _field_value(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    for prefix, source in (("metadata.labels", meta.get("labels")), ("metadata.annotations", meta.get("annotations"))):
        if path.startswith(prefix + "["):
            key = path[len(prefix) + 1:].rstrip("]").strip("'\"")
            return str((source or {}).get(key, ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise ConfigError("CreateContainerConfigError", f"unsupported fieldRef fieldPath: {path}")
    return str(simple[path] or "")


def _source_data(obj: Obj, plural: str) -> dict[str, str]:
    if plural == "configmaps":
        data = dict(obj.get("data") or {})
        for key, value in (obj.get("binaryData") or {}).items():
            data.setdefault(key, base64.b64decode(value).decode("utf-8", "replace"))
        return data
    out: dict[str, str] = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            out[key] = ""
    for key, value in (obj.get("stringData") or {}).items():
        out[key] = value
    return out


_WORDING = {"configmaps": ("configmap", "ConfigMap"), "secrets": ("secret", "Secret")}


def _key_ref(ref: Obj, plural: str, namespace: str, lookup: Lookup) -> str | None:
    name = ref.get("name", "")
    obj = lookup(plural, namespace, name)
    optional = bool(ref.get("optional"))
    lower, title = _WORDING[plural]
    if obj is None:
        if optional:
            return None
        raise ConfigError("CreateContainerConfigError", f'{lower} "{name}" not found')
    data = _source_data(obj, plural)
    key = ref.get("key", "")
    if key not in data:
        if optional:
            return None
        raise ConfigError("CreateContainerConfigError", f"couldn't find key {key} in {title} {namespace}/{name}")
    return data[key]


def container_env(pod: Obj, container: Obj, lookup: Lookup, pod_ip: str, host_ip: str) -> dict[str, str]:
    """The variables the pod spec defines for `container` (envFrom, then env), expanded in order."""
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix") or ""
        for plural, ref_name in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(ref_name)
            if not isinstance(ref, dict):
                continue
            obj = lookup(plural, namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError("CreateContainerConfigError", f'{_WORDING[plural][0]} "{ref.get("name")}" not found')
            for key, value in _source_data(obj, plural).items():
                env[prefix + key] = value
    for var in container.get("env") or ():
        name = var.get("name")
        if not name:
            continue
        if "value" in var or not var.get("valueFrom"):
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = _field_value(pod, source["fieldRef"].get("fieldPath", ""), pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            value = _resource_value(pod, container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "configmaps", namespace, lookup)
        elif "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "secrets", namespace, lookup)
        else:
            value = None
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Obj, env: Mapping[str, str], image: ImageMapping | None = None) -> list[str]:
    """`command` + `args`, expanded. An image mapping supplies the image's entrypoint and CMD where the container
    leaves them out; an unknown image has neither, so with no command `args[0]` is the program."""
    command = [str(a) for a in (container.get("command") or [])]
    args = [str(a) for a in (container.get("args") or [])]
    if image is not None and not command:
        command = list(image.entrypoint)
        if not args:
            args = list(image.cmd)
    argv = command + args
    if not argv:
        raise ConfigError("CreateContainerError",
                          "LocalKube runs no images: the container needs a command (or args whose first element is "
                          f"the program) for image {container.get('image', '')!r}")
    return [expand(a, env) for a in argv]


def base_environment(mapping: ImageMapping | None = None, inherited: Mapping[str, str] | None = None
                     ) -> dict[str, str]:
    """A minimal environment from the LocalKube process: this interpreter's bin directory first on PATH."""
    source = os.environ if inherited is None else inherited
    env = {k: source[k] for k in INHERITED if source.get(k)}
    parts = [os.path.dirname(sys.executable)]
    if mapping is not None:
        parts = [*mapping.path, *parts]
    parts += [p for p in (source.get("PATH") or os.defpath).split(os.pathsep) if p and p not in parts]
    env["PATH"] = os.pathsep.join(parts)
    env.setdefault("HOME", os.path.expanduser("~"))
    env.setdefault("LANG", "C.UTF-8")
    if mapping is not None:
        env.update(mapping.env)
    return env


def overlay(env: dict[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Add `extra` on top of `env`, prepending to search-path variables instead of replacing them."""
    for key, value in extra.items():
        if key in PATH_LISTS and env.get(key):
            env[key] = value + os.pathsep + env[key]
        else:
            env[key] = value
    return env
