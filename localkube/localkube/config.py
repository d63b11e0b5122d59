"""The cluster configuration file (`localkube --config cluster.yaml`, `LocalKube(config=...)`), as kind has one.

```yaml
apiVersion: localkube/v1alpha1
kind: Cluster
kubernetesVersion: "1.33"          # what /version and the nodes report
stateDir: ./localkube-state        # objects, keys and certificates kept across restarts (default: a temp dir)
ports:
  https: 6443                      # the API server (default 0: any free port)
  http: 8080                       # plain HTTP, off unless set: for raw-HTTP tests and benchmarks
simulatePods: false                # every pod Running without a process, as KWOK does
nodes:
  - name: gpu-node
    capacity: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "2"}
    labels: {nvidia.com/gpu.present: "true"}
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
    simulate: false
images:
  - pattern: "registry.example.com/team/app:*"
    entrypoint: [python, -m, app]
    cmd: [--serve]
    path: [/opt/app-venv/bin]
    env: {APP_MODE: local}
```

Every field is optional. A file is checked whole before anything starts: each problem is reported with the file,
the field path and what is wrong, as `ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from localkube.apiserver.discovery import DEFAULT_VERSION
from localkube.apiserver.validation import parse_quantity
from localkube.controllers.nodes import DEFAULT_CAPACITY, NodeConfig
from localkube.node.images import ImageMapping

API_VERSION = "localkube/v1alpha1"
KIND = "Cluster"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_VERSION = re.compile(r"^v?1\.(\d+)(?:\.(\d+))?$")
# RFC 1123 subdomain: what a Node name must be.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class ClusterConfig:
    """What a LocalKube is: its nodes, image mappings, listeners, state and reported version."""

    nodes: tuple[NodeConfig, ...] = ()
    images: tuple[ImageMapping, ...] = ()
    https_port: int = 0
    http_port: int | None = None
    state_dir: Path | None = None
    kubernetes_version: str = DEFAULT_VERSION
    simulate_pods: bool = False

    def with_defaults(self) -> ClusterConfig:
        """One default node when none is configured (simulated if the whole cluster simulates pods)."""
        if self.nodes:
            return self
        return replace(self, nodes=(NodeConfig(simulate=self.simulate_pods),))


class ConfigError(ValueError):
    """A configuration LocalKube refuses; `problems` are `(field path, message)` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path or '(top level)'}: {message}" for path, message in problems)
        super().__init__(f"{source}: invalid LocalKube configuration:\n{lines}")


def load(path: str | Path) -> ClusterConfig:
    """Read and check a configuration file; a relative `stateDir` is taken from the file's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(str(path), [("", f"cannot read the file: {err.strerror}")]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), [("", f"not valid YAML: {err}")]) from None
    return parse({} if doc is None else doc, source=str(path), base=path.parent)


def parse(doc: Any, *, source: str = "<config>", base: Path | None = None) -> ClusterConfig:
    """Check a configuration document (already parsed) and build the `ClusterConfig`."""
    check = _Checker()
    config = check.cluster(doc, base or Path.cwd())
    if check.problems:
        raise ConfigError(source, check.problems)
    return config


# -- checking ---------------------------------------------------------------------------------------------------


@dataclass
class _Checker:
    """Walks the document once, collecting every problem instead of stopping at the first."""

    problems: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, value: Any, path: str, known: tuple[str, ...]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping, not {_type(value)}")
            return {}
        for key in value:
            if key not in known:
                self.fail(_join(path, str(key)), f"unknown field (known fields: {', '.join(known)})")
        return value

    def typed(self, value: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(path, f"must be {what}, not {_type(value)}")
            return None
        return value

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(path, f"must be a list of strings, not {_type(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                out.append(str(item))
            else:
                self.fail(f"{path}[{i}]", f"must be a string, not {_type(item)}")
        return tuple(out)

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping of strings, not {_type(value)}")
            return {}
        out = {}
        for key, item in value.items():
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                out[str(key)] = str(item)
            else:
                self.fail(_join(path, str(key)), f"must be a string, not {_type(item)}")
        return out

    def items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list, not {_type(value)}")
            return []
        return [(f"{path}[{i}]", item) for i, item in enumerate(value)]

    # -- the document -----------------------------------------------------------------------------------------

    def cluster(self, doc: Any, base: Path) -> ClusterConfig:
        top = self.mapping(doc, "", ("apiVersion", "kind", "kubernetesVersion", "stateDir", "ports", "simulatePods",
                                     "nodes", "images"))
        if top.get("apiVersion") not in (None, API_VERSION):
            self.fail("apiVersion", f"must be {API_VERSION!r}, not {top['apiVersion']!r}")
        if top.get("kind") not in (None, KIND):
            self.fail("kind", f"must be {KIND!r}, not {top['kind']!r}")
        ports = self.mapping(top.get("ports"), "ports", ("https", "http"))
        https = self.port(ports.get("https"), "ports.https")
        http = self.port(ports.get("http"), "ports.http")
        if https and http and https == http:
            self.fail("ports.http", f"must differ from ports.https ({https})")
        state = self.typed(top.get("stateDir"), "stateDir", str, "a path")
        simulate = bool(self.typed(top.get("simulatePods"), "simulatePods", bool, "true or false"))
        nodes = self.unique([self.node(p, n, simulate) for p, n in self.items(top.get("nodes"), "nodes")],
                            "nodes", lambda node: node.name, "node name")
        images = [self.image(p, i) for p, i in self.items(top.get("images"), "images")]
        return ClusterConfig(
            nodes=tuple(n for n in nodes if n is not None),
            images=tuple(i for i in images if i is not None),
            https_port=https or 0,
            http_port=http,
            state_dir=(base / state) if state else None,
            kubernetes_version=self.version(top.get("kubernetesVersion")),
            simulate_pods=simulate,
        )

    def port(self, value: Any, path: str) -> int | None:
        number = self.typed(value, path, int, "a port number")
        if number is not None and not 0 <= number <= 65535:
            self.fail(path, f"must be between 0 and 65535, not {number}")
            return None
        return number

    def version(self, value: Any) -> str:
        if value is None:
            return DEFAULT_VERSION
        match = _VERSION.match(str(value))
        if match is None:
            self.fail("kubernetesVersion", f'must be a Kubernetes version such as "1.33" or "1.33.2", not {value!r}')
            return DEFAULT_VERSION
        return f"1.{match.group(1)}" + (f".{match.group(2)}" if match.group(2) else "")

    def unique(self, found: list[Any], path: str, key: Callable[[Any], str], what: str) -> list[Any]:
        seen: dict[str, int] = {}
        for i, item in enumerate(found):
            if item is None:
                continue
            name = key(item)
            if name in seen:
                self.fail(f"{path}[{i}].name", f"duplicate {what} {name!r} (also {path}[{seen[name]}])")
            seen.setdefault(name, i)
        return found

    def node(self, path: str, value: Any, simulate_all: bool) -> NodeConfig | None:
        raw = self.mapping(value, path, ("name", "capacity", "labels", "taints", "simulate"))
        if not isinstance(value, Mapping):
            return None
        name = self.typed(raw.get("name"), f"{path}.name", str, "a string")
        if name is None:
            if "name" not in raw:
                self.fail(f"{path}.name", "required")
            return None
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            self.fail(f"{path}.name", f"{name!r} is not a valid node name (lower case RFC 1123 subdomain)")
        capacity = dict(DEFAULT_CAPACITY)
        for key, amount in self.string_map(raw.get("capacity"), f"{path}.capacity").items():
            try:
                parse_quantity(amount)
            except ValueError as err:
                self.fail(_join(f"{path}.capacity", key), f"{amount!r} is not a quantity: {err}")
                continue
            capacity[key] = amount
        taints = []
        for taint_path, taint in self.items(raw.get("taints"), f"{path}.taints"):
            entry = self.mapping(taint, taint_path, ("key", "value", "effect"))
            if not isinstance(entry.get("key"), str) or not entry.get("key"):
                self.fail(f"{taint_path}.key", "required")
            if entry.get("effect") not in TAINT_EFFECTS:
                self.fail(f"{taint_path}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}, "
                                                  f"not {entry.get('effect')!r}")
            if entry.get("value") is not None and not isinstance(entry.get("value"), str):
                self.fail(f"{taint_path}.value", f"must be a string, not {_type(entry['value'])}")
            taints.append({k: v for k, v in entry.items() if v is not None})
        simulate = self.typed(raw.get("simulate"), f"{path}.simulate", bool, "true or false")
        return NodeConfig(name=name, capacity=capacity, labels=self.string_map(raw.get("labels"), f"{path}.labels"),
                          taints=tuple(taints), simulate=simulate_all if simulate is None else simulate)

    def image(self, path: str, value: Any) -> ImageMapping | None:
        raw = self.mapping(value, path, ("pattern", "entrypoint", "cmd", "path", "env"))
        pattern = self.typed(raw.get("pattern"), f"{path}.pattern", str, "a string")
        if not pattern:
            if raw.get("pattern") is None:
                self.fail(f"{path}.pattern", "required (an image name, * and ? match any characters)")
            return None
        return ImageMapping(pattern=pattern, path=self.strings(raw.get("path"), f"{path}.path"),
                            env=self.string_map(raw.get("env"), f"{path}.env"),
                            entrypoint=self.strings(raw.get("entrypoint"), f"{path}.entrypoint"),
                            cmd=self.strings(raw.get("cmd"), f"{path}.cmd"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
