"""`dask-kube-operator` / `python -m dask_kube.operator`: run the operator (standalone, no kopf peering)."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import config  # noqa: F401 - loads the kubernetes.* dask config defaults

INSTALL_OPERATOR = "the operator's dependencies (kopf) are not installed: pip install 'dask-kube[operator]'"


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
    p.add_argument("--verbose", action="store_true", help="log what the operator does (INFO)")
    p.add_argument("--debug", action="store_true", help="log everything, kopf's internals included (DEBUG)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        import kopf

        from .handlers import REGISTRY
    except ModuleNotFoundError as err:
        if err.name != "kopf":
            raise
        print(f"dask-kube-operator: {INSTALL_OPERATOR}", file=sys.stderr)
        return 2
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.debug:
        for noisy in ("kopf", "httpx", "httpcore", "kr8s"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    kopf.run(registry=REGISTRY, standalone=True, clusterwide=not args.namespace,
             namespaces=args.namespace, liveness_endpoint=args.liveness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
