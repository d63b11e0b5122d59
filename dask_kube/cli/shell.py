"""What every `dask kube` command shares: which Kubernetes, running one async operation on a fresh loop, errors
turned into messages that say what to do next, and output."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import click
import httpx
import kr8s
import kr8s.asyncio

from .. import kubernetes_api, specs
from ..errors import ClusterNotFoundError, DaskKubeError, KubeconfigError, SpecError

T = TypeVar("T")
P = ParamSpec("P")
LIST_HINT = "`dask kube list -A` shows the clusters of every namespace."

namespace_option = click.option("-n", "--namespace", metavar="NS",
                                help="Namespace (default: the kubeconfig context's namespace).")
OUTPUTS = click.Choice(["table", "yaml", "json"])


@dataclass(frozen=True)
class Target:
    """Which Kubernetes: the group's --kubeconfig and --context (kr8s's defaults when None)."""

    kubeconfig: str | None
    context: str | None


def target(ctx: click.Context) -> Target:
    found = ctx.find_object(Target)
    return found if found is not None else Target(None, None)


def _hint(err: BaseException) -> str:
    if isinstance(err, KubeconfigError):
        return (f"{err}\nhint: set KUBECONFIG or pass --kubeconfig; for a local Kubernetes, run `dask kube local up` "
                "and use the kubeconfig it prints.")
    if isinstance(err, ClusterNotFoundError):
        return f"{err}. {LIST_HINT}"
    if isinstance(err, kr8s.ServerError):
        return f"the Kubernetes API server refused: {err}"
    if isinstance(err, httpx.TransportError):
        return (f"lost the Kubernetes API server: {err!r}\nhint: is it running? (`kubectl cluster-info` checks the "
                "same kubeconfig)")
    return str(err)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one operation on a fresh loop; dask_kube's and kr8s's errors become `ClickException`s."""
    try:
        return asyncio.run(coro)
    except SpecError as err:
        if err.field:
            raise click.BadParameter(err.message, param_hint=f"--{err.field.replace('_', '-')}") from None
        raise click.ClickException(str(err)) from None
    except (DaskKubeError, kr8s.ServerError, httpx.TransportError, TimeoutError, ConnectionError) as err:
        raise click.ClickException(_hint(err)) from None


def with_api(where: Target, fn: Callable[Concatenate[kr8s.asyncio.Api, str, P], Awaitable[T]],
             namespace: str | None, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(api, namespace, *args, **kwargs)` with a fresh client; namespace None means the kubeconfig's."""

    async def call() -> T:
        async with kubernetes_api.private_client(where.kubeconfig, where.context) as api:
            return await fn(api, namespace or api.namespace, *args, **kwargs)

    return run(call())


def until_signalled() -> asyncio.Event:
    """An event that SIGINT or SIGTERM (Ctrl+C, `kill`) sets, for commands that run until stopped. Handlers on the
    running loop also override a SIGINT that the shell set to be ignored (a background job)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            loop.add_signal_handler(sig, stop.set)
    return stop


def console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def dump(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(specs.to_yaml(data), nl=False)


def format_age(age: datetime.timedelta | None) -> str:
    """kubectl's style: 45s, 7m, 3h, 12d."""
    if age is None:
        return "-"
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
