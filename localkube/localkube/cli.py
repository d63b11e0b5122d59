"""`localkube --kubeconfig PATH [--config cluster.yaml]`: run LocalKube in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from localkube.cluster import LocalKube
from localkube.config import ClusterConfig, ConfigError, load, parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="localkube",
        description="A local Kubernetes API server whose pods run as processes (for tests, demos and CI without "
                    "containers). Writes a kubeconfig once it is ready; stops every pod on exit.",
    )
    p.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig (written once ready)")
    p.add_argument("--config", help="a cluster configuration file: nodes, images, ports, state, version "
                                    "(see README.md)")
    p.add_argument("--port", type=int, help="HTTPS port on 127.0.0.1 (default: the config's, else any free port)")
    p.add_argument("--http-port", type=int,
                   help="also serve plain HTTP on this port, where requests without credentials are the admin "
                        "(for raw-HTTP tests and benchmarks; 0: any free port)")
    p.add_argument("--state-dir", help="keep objects here across restarts (default: a temporary directory)")
    p.add_argument("--simulate-pods", action="store_true", default=None,
                   help="pods become Running and Ready without running any process (as KWOK does)")
    p.add_argument("--kubernetes-version", help='the version LocalKube reports, such as "1.33"')
    p.add_argument("--log-level", default="WARNING", help="Python log level (default WARNING)")
    return p


async def _serve(args: argparse.Namespace, config: ClusterConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kube = LocalKube(args.kubeconfig, config=config, port=args.port, http_port=args.http_port,
                     state_dir=args.state_dir, simulate_pods=args.simulate_pods,
                     kubernetes_version=args.kubernetes_version)
    async with kube:
        extra = f" (plain HTTP: {kube.http_url})" if kube.http_port is not None else ""
        print(f"LocalKube serving {kube.url}{extra}; kubeconfig written to {kube.kubeconfig}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config) if args.config else ClusterConfig()
        if args.kubernetes_version is not None:  # checked as the config file's field is
            args.kubernetes_version = parse({"kubernetesVersion": args.kubernetes_version},
                                            source="--kubernetes-version").kubernetes_version
    except ConfigError as err:
        print(f"localkube: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, config))
    except OSError as err:
        print(f"localkube: cannot start: {err}", file=sys.stderr)
        return 1
    return 0
