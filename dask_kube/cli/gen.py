"""`dask kube gen`: the manifests `KubeCluster` would create, printed for kubectl, GitOps or review."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ..errors import SpecError
from .shell import dump, namespace_option


@click.group(help="Generate Kubernetes manifests for Dask resources (print them; apply them with kubectl).")
def gen() -> None:
    pass


def _parse_env(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str] | None:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        env[key] = value  # split on the first '=': values may contain '='
    return env or None


def _parse_json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON ({err.msg}): {value!r}", ctx=ctx, param=param) from None


@gen.command("cluster", epilog="""\b
Examples:
  dask kube gen cluster --name demo
  dask kube gen cluster --name gpu --n-workers 4 --image rapidsai/base:25.02-cuda12.8-py3.12 \\
      --resources '{"limits": {"nvidia.com/gpu": "1"}}' --env EXTRA_PIP_PACKAGES=s3fs
  dask kube gen cluster --name demo -o json | kubectl apply -f -""")
@click.option("--name", required=True, help="Cluster name (a DNS label of at most 53 characters).")
@click.option("--image", default=None, help="Container image of the scheduler and workers (default: dask config "
                                            "kubernetes.image, else the Dask image tagged for the distributed and "
                                            "Python versions installed here).")
@click.option("--n-workers", type=click.IntRange(min=0), default=3, show_default=True, help="Workers to start.")
@click.option("--resources", callback=_parse_json, metavar="JSON",
              help='Container resources as JSON, e.g. \'{"limits": {"cpu": "1", "memory": "2Gi"}}\'.')
@click.option("-e", "--env", multiple=True, callback=_parse_env, metavar="KEY=VALUE",
              help="Environment variable of the scheduler and workers (repeatable; split on the first '=').")
@click.option("--worker-command", default=None, help="Worker command (default: dask config, `dask worker`).")
@click.option("--scheduler-service-type", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer"]),
              default=None, help="Type of the scheduler Service (default: dask config, ClusterIP).")
@click.option("--idle-timeout", type=click.IntRange(min=0), default=None,
              help="Delete the cluster after its scheduler was idle this many seconds (default: never).")
@click.option("--jupyter", is_flag=True, help="Run Jupyter in the scheduler (the image needs jupyter-server).")
@click.option("--tls", is_flag=True, help="Mutual TLS with a CA and certificate the operator generates.")
@click.option("--tls-secret", default=None, metavar="NAME",
              help="Mutual TLS with the certificates of this Secret (keys ca.crt, tls.crt, tls.key).")
@click.option("--run-as-root", is_flag=True,
              help="Run the pods as root (images that need it); by default they pass the `restricted` Pod Security "
                   "Standard.")
@click.option("--network-policy", is_flag=True,
              help="Have the operator create a NetworkPolicy that lets only pods of the namespace and the operator "
                   "reach the scheduler.")
@namespace_option
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def gen_cluster(name: str, image: str | None, n_workers: int, resources: Any, env: dict[str, str] | None,
                worker_command: str | None, scheduler_service_type: str | None, idle_timeout: int | None,
                jupyter: bool, tls: bool, tls_secret: str | None, run_as_root: bool, network_policy: bool,
                namespace: str | None, output: str) -> None:
    """Print the DaskCluster that `KubeCluster(name=..., ...)` with the same options would create."""
    from ..cluster import options

    try:
        resolved = options.resolve(name=name, image=image, n_workers=n_workers, resources=resources, env=env,
                                   worker_command=worker_command, scheduler_service_type=scheduler_service_type,
                                   idle_timeout=idle_timeout, jupyter=jupyter or None,
                                   security=tls_secret or (True if tls else None), run_as_root=run_as_root or None,
                                   # applied with kubectl, the cluster has no client: no client lease to expire
                                   shutdown_on_close=False,
                                   network_policy=network_policy or None)
    except SpecError as err:
        hint = "--tls-secret" if err.field == "security" else f"--{(err.field or 'name').replace('_', '-')}"
        raise click.BadParameter(err.message, param_hint=hint) from None
    manifest = resolved.manifest()
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    dump(manifest, output)


