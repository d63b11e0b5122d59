"""`dask-kube-operator` / `python -m dask_kube.operator`: run the operator (standalone, no kopf peering)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Coroutine

from .. import config  # loads the kubernetes.* dask config defaults
from .settings import LeaderElectionSettings

INSTALL_OPERATOR = ("the operator's dependencies (kopf, prometheus_client) are not installed: "
                    "pip install 'dask-kube[operator]'")
OPERATOR_DEPENDENCIES = ("kopf", "prometheus_client")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dask-kube-operator",
        description="Reconcile kubernetes.dask.org DaskCluster, DaskWorkerGroup, DaskJob and DaskAutoscaler "
                    "resources into Dask schedulers and workers.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="serve this namespace (repeatable; globs such as 'team-*' allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace (the default)")
    p.add_argument("--liveness", metavar="URL", help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics at :N/metrics (0: any free port, logged; default: "
                        "kubernetes.operator.metrics-port)")
    p.add_argument("--leader-elect", action="store_true", default=None,
                   help="run as one of several replicas: reconcile only while holding the leader Lease "
                        "(default: kubernetes.operator.leader-election.enabled)")
    p.add_argument("--lease-name", metavar="NAME", help="the leader Lease's name (default: dask-kube-operator)")
    p.add_argument("--lease-namespace", metavar="NS", help="the leader Lease's namespace (default: the pod's)")
    p.add_argument("--verbose", action="store_true", help="log what the operator does (INFO)")
    p.add_argument("--debug", action="store_true", help="log everything, kopf's internals included (DEBUG)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        election = _leader_election(args)
    except ValueError as err:
        print(f"dask-kube-operator: {err}", file=sys.stderr)
        return 2
    try:
        import kopf

        from . import leadership, metrics
        from .handlers import REGISTRY
    except ModuleNotFoundError as err:
        if err.name not in OPERATOR_DEPENDENCIES:
            raise
        print(f"dask-kube-operator: {INSTALL_OPERATOR}", file=sys.stderr)
        return 2
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.debug:
        for noisy in ("kopf", "httpx", "httpcore", "kr8s"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    port = args.metrics_port if args.metrics_port is not None else config.get("operator.metrics-port")
    if port is not None:
        logging.getLogger(__name__).info("serving metrics on :%d/metrics", metrics.serve(int(port)))

    def operator() -> Coroutine[None, None, None]:
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = exact_namespaces(args.namespace)
        return kopf.operator(registry=REGISTRY, standalone=True, clusterwide=not args.namespace,
                             namespaces=args.namespace, liveness_endpoint=args.liveness, settings=settings)

    if election.enabled:
        return asyncio.run(leadership.run(election, args.liveness, operator))
    metrics.LEADER.set(1)
    with contextlib.suppress(asyncio.CancelledError):  # as kopf.run does
        asyncio.run(operator())
    return 0


def exact_namespaces(namespaces: list[str]) -> bool:
    """Whether the operator serves only namespaces named exactly, no globs: then kopf's scanning of namespaces
    and CRDs has nothing to find, and is turned off. With it on, kopf lists namespaces before it serves any, and
    without the cluster-scoped permission (single-namespace mode's Role) its retries held every watch back for
    about a minute. The cost: CRDs installed or changed after start-up need a restart, as without the permission."""
    return bool(namespaces) and not any(set(ns) & set("*?!,") for ns in namespaces)


def _leader_election(args: argparse.Namespace) -> LeaderElectionSettings:
    """Config, then the command line's flags over it."""
    settings = LeaderElectionSettings.from_config()
    overrides = {"enabled": args.leader_elect, "lease_name": args.lease_name, "namespace": args.lease_namespace}
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})


if __name__ == "__main__":
    sys.exit(main())
