"""The cluster configuration file: what it builds, and every way a bad one is refused with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from localkube.config import ClusterConfig, ConfigError, load, parse
from localkube.controllers.nodes import DEFAULT_CAPACITY, NodeConfig
from localkube.node.images import ImageMapping

FULL = """
apiVersion: localkube/v1alpha1
kind: Cluster
kubernetesVersion: "1.33"
stateDir: state
ports: {https: 16443, http: 18080}
simulatePods: false
nodes:
  - name: cpu-node
  - name: gpu-node
    capacity: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 2}
    labels: {nvidia.com/gpu.present: "true"}
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
    simulate: true
images:
  - pattern: "registry.example.com/team/app:*"
    entrypoint: [python, -m, app]
    cmd: [--serve]
    path: [/opt/app-venv/bin]
    env: {APP_MODE: local, WORKERS: 2}
"""


def _problems(doc: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(doc, source="cluster.yaml")
    assert str(info.value).startswith("cluster.yaml: invalid LocalKube configuration:")
    return info.value.problems


def test_a_full_file_builds_every_field(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(FULL)
    config = load(path)
    assert config.kubernetes_version == "1.33"
    assert config.state_dir == tmp_path / "state"  # relative to the file, not to where localkube runs
    assert (config.https_port, config.http_port, config.simulate_pods) == (16443, 18080, False)
    cpu, gpu = config.nodes
    assert cpu == NodeConfig(name="cpu-node", capacity=DEFAULT_CAPACITY)
    assert gpu.capacity == {**DEFAULT_CAPACITY, "cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert gpu.labels == {"nvidia.com/gpu.present": "true"}
    assert gpu.taints == ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},)
    assert gpu.simulate is True
    assert config.images == (ImageMapping("registry.example.com/team/app:*", path=("/opt/app-venv/bin",),
                                          env={"APP_MODE": "local", "WORKERS": "2"},
                                          entrypoint=("python", "-m", "app"), cmd=("--serve",)),)


def test_an_empty_file_is_the_default_cluster(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    config = load(path)
    assert config == ClusterConfig()
    assert config.with_defaults().nodes == (NodeConfig(),)
    assert parse({"simulatePods": True}).with_defaults().nodes == (NodeConfig(simulate=True),)


@pytest.mark.parametrize(("doc", "expected"), [
    ({"node": []}, [("node", "unknown field (known fields: apiVersion, kind, kubernetesVersion, stateDir, ports, "
                              "simulatePods, nodes, images)")]),
    ({"nodes": [{"name": "a", "capacty": {}}]},
     [("nodes[0].capacty", "unknown field (known fields: name, capacity, labels, taints, simulate)")]),
    ({"nodes": [{"name": "a", "capacity": {"memory": "2GB"}}]},
     [("nodes[0].capacity.memory", "'2GB' is not a quantity: quantities must match the regular expression "
                                   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]),
    ({"nodes": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
     [("nodes[2].name", "duplicate node name 'a' (also nodes[0])")]),
    ({"nodes": [{"capacity": {"cpu": "1"}}]}, [("nodes[0].name", "required")]),
    ({"nodes": [{"name": "GPU_node"}]},
     [("nodes[0].name", "'GPU_node' is not a valid node name (lower case RFC 1123 subdomain)")]),
    ({"nodes": [{"name": "a", "taints": [{"key": "k", "effect": "NoRun"}]}]},
     [("nodes[0].taints[0].effect", "must be one of NoSchedule, PreferNoSchedule, NoExecute, not 'NoRun'")]),
    ({"nodes": {"name": "a"}}, [("nodes", "must be a list, not a mapping")]),
    ({"images": [{"entrypoint": ["x"]}]},
     [("images[0].pattern", "required (an image name, * and ? match any characters)")]),
    ({"images": [{"pattern": "x", "cmd": "serve"}]}, [("images[0].cmd", "must be a list of strings, not a string")]),
    ({"ports": {"https": 70000}}, [("ports.https", "must be between 0 and 65535, not 70000")]),
    ({"ports": {"https": 8080, "http": 8080}}, [("ports.http", "must differ from ports.https (8080)")]),
    ({"kubernetesVersion": "latest"},
     [("kubernetesVersion", "must be a Kubernetes version such as \"1.33\" or \"1.33.2\", not 'latest'")]),
    ({"kind": "Config"}, [("kind", "must be 'Cluster', not 'Config'")]),
    ({"simulatePods": "yes"}, [("simulatePods", "must be true or false, not a string")]),
    (["nodes"], [("", "must be a mapping, not a list")]),
])
def test_bad_fields_are_refused_with_their_path(doc: object, expected: list[tuple[str, str]]) -> None:
    assert _problems(doc) == expected


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems({"nodes": [{"name": "a", "capacity": {"cpu": "lots"}, "gpus": 1}, {"name": "a"}],
                          "images": [{"pattern": "p", "env": {"A": ["x"]}}]})
    assert [path for path, _ in problems] == ["nodes[0].gpus", "nodes[0].capacity.cpu", "nodes[1].name",
                                              "images[0].env.A"]


def test_files_that_cannot_be_read_or_parsed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.yaml: invalid LocalKube configuration:\n  \(top level\): "
                                          r"cannot read the file: No such file or directory"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)


def test_the_documented_example_is_valid() -> None:
    """The example in config.py's docstring (and the README's) parses as written."""
    from localkube import config as module

    example = module.__doc__.split("```yaml\n", 1)[1].split("```", 1)[0]  # type: ignore[union-attr]
    parsed = parse(yaml.safe_load(example))
    assert [n.name for n in parsed.nodes] == ["gpu-node"] and parsed.images[0].cmd == ("--serve",)
