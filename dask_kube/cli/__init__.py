"""`dask kube ...` (dask's `dask_cli` entry point) and `dask-kube ...`: Dask clusters on Kubernetes from a shell.

dask loads every `dask_cli` entry point before it runs any subcommand, so every `dask worker` that starts where
dask_kube is installed imports this module. It therefore holds only the group: each command's module (and with it
kr8s, httpx, rich, distributed) is imported when that command is looked up, to run it or to show its help.

The commands are thin: they parse options, run one operation (`dask_kube.cluster.operations`, or the functions of
their own module) on a fresh event loop, render the result, and turn errors into messages that say what to do next
(`shell.py`).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of each command, imported on first use.
COMMANDS = {
    "gen": "dask_kube.cli.gen:gen",
    "list": "dask_kube.cli.clusters:list_command",
    "scale": "dask_kube.cli.clusters:scale_command",
    "port-forward": "dask_kube.cli.clusters:port_forward_command",
    "logs": "dask_kube.cli.clusters:logs_command",
    "delete": "dask_kube.cli.clusters:delete_command",
    "install": "dask_kube.cli.install:install_command",
    "local": "dask_kube.cli.local:local",
}

MAIN_HELP = """Dask clusters on Kubernetes: generate, list, scale, forward, read logs, delete; install the operator,
or run a local Kubernetes to try it all.

\b
Examples:
  dask kube local up                        # a local Kubernetes with the CRDs and the operator
  dask kube gen cluster --name demo --n-workers 2 | kubectl apply -f -
  dask kube list -A
  dask kube scale demo 4
  dask kube port-forward demo               # then Client("tcp://127.0.0.1:PORT")
  dask kube logs demo --scheduler -f
  dask kube delete demo

The same commands run as `dask-kube ...`. Clusters made from Python (`dask_kube.KubeCluster`) show up here too.
"""


class LazyGroup(click.Group):
    """A group whose commands are imported when first looked up."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), self.lazy[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


# dask-kubernetes' `dask kubernetes ...` commands that have a `dask kube ...` equivalent, imported on first use.
ALIASES = {"gen": COMMANDS["gen"], "port-forward": COMMANDS["port-forward"]}


@click.group(name="kubernetes", cls=LazyGroup, lazy=ALIASES,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
             help="dask-kubernetes' command names, kept so that its users' scripts run: each runs the `dask kube` "
                  "command of the same name, which replaces it.")
@click.pass_context
def kubernetes(ctx: click.Context) -> None:
    """`dask kubernetes gen cluster` and `dask kubernetes port-forward` (the `dask_cli` entry point `kubernetes`).
    The note goes to stderr, so that the manifest `gen` prints still pipes into kubectl."""
    from .shell import Target

    if ctx.invoked_subcommand:
        click.echo(f"`dask kubernetes {ctx.invoked_subcommand}` is dask-kubernetes' name for `dask kube "
                   f"{ctx.invoked_subcommand}`, which replaces it: use that.", err=True)
    ctx.obj = Target(None, None)


@click.group(name="kube", cls=LazyGroup, lazy=COMMANDS, help=MAIN_HELP,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
@click.option("--context", metavar="NAME", help="Kubeconfig context (default: its current context).")
@click.version_option(package_name="dask-kube", prog_name="dask kube")
@click.pass_context
def main(ctx: click.Context, kubeconfig: str | None, context: str | None) -> None:
    from .shell import Target

    ctx.obj = Target(kubeconfig, context)
