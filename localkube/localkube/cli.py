"""`localkube --kubeconfig PATH`: run LocalKube in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from localkube.cluster import LocalKube


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="localkube",
        description="A local Kubernetes API server whose pods run as processes (for tests, demos and trying "
                    "dask_kube without a cluster). Writes a kubeconfig once it is ready; stops every pod on exit.",
    )
    p.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig (written once ready)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    p.add_argument("--tls-port", type=int, default=0,
                   help="HTTPS port on 127.0.0.1, where ServiceAccount tokens are used (default: any free port)")
    p.add_argument("--state-dir", help="keep objects here across restarts (default: a temporary directory)")
    p.add_argument("--simulate-pods", action="store_true",
                   help="pods become Running and Ready without running any process (as KWOK does)")
    p.add_argument("--log-level", default="WARNING", help="Python log level (default WARNING)")
    return p


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kube = LocalKube(args.kubeconfig, port=args.port, tls_port=args.tls_port, state_dir=args.state_dir,
                     simulate_pods=args.simulate_pods)
    async with kube:
        print(f"LocalKube serving {kube.url} (and {kube.tls_url} for ServiceAccount tokens); kubeconfig written to "
              f"{kube.kubeconfig}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except OSError as err:
        print(f"localkube: cannot start: {err}", file=sys.stderr)
        return 1
    return 0

