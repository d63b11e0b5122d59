"""`dask kube local up|down`: a LocalKube, the CRDs and the operator, running in the background.

`up` starts two detached processes (the `localkube` command, from the `dask-kube[local]` extra, and
`python -m dask_kube.operator`), each in a
session of its own so that closing the terminal or pressing Ctrl+C in it does not stop them, and records them in
`STATE_DIR/local.json`; `down` stops both (operator first) with SIGTERM, and LocalKube stops every pod process.
Their logs are `STATE_DIR/localkube.log` and `STATE_DIR/operator.log`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import DaskKubeError

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def default_state_dir() -> Path:
    """`$XDG_CACHE_HOME/dask-kube`, else `~/.cache/dask-kube`."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dask-kube"


class LocalKubeError(DaskKubeError, RuntimeError):
    """`local up` or `local down` could not do what was asked; the message says what to do instead."""


@dataclass(frozen=True)
class LocalProcesses:
    """What `local up` started, as recorded in the pidfile."""

    state_dir: Path
    kubeconfig: Path
    localkube_pid: int
    operator_pid: int

    @property
    def pids(self) -> dict[str, int]:
        return {"operator": self.operator_pid, "localkube": self.localkube_pid}


# What each recorded process's command line contains: a recycled pid running something else is not ours.
COMMAND_MARKS = {"operator": b"dask_kube.operator", "localkube": b"localkube"}


def pidfile(state_dir: Path) -> Path:
    return state_dir / "local.json"


def alive(pid: int, mark: bytes) -> bool:
    """The process runs and its command line contains `mark` (a recycled pid running something else is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        cmdline = mark  # no /proc (macOS): trust the pid
    except OSError:
        cmdline = mark
    if mark not in cmdline:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this very process still answers signal 0; reap it if so.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def read_state(state_dir: Path) -> LocalProcesses | None:
    path = pidfile(state_dir)
    try:
        data = json.loads(path.read_text())
        return LocalProcesses(state_dir, Path(data["kubeconfig"]), int(data["localkube_pid"]),
                              int(data["operator_pid"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise LocalKubeError(f"{path} is not a dask-kube pidfile ({err}); remove it if nothing runs") from None


def localkube_command() -> list[str]:
    """The `localkube` command of this environment (the `dask-kube[local]` extra installs it), else on PATH."""
    script = Path(sys.executable).with_name("localkube")
    found = str(script) if script.exists() else shutil.which("localkube")
    if found is None:
        raise LocalKubeError("`dask kube local` runs LocalKube, which is not installed here: "
                             "pip install 'dask-kube[local]'")
    return [found]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not ready():
        if proc.poll() is not None:
            raise LocalKubeError(f"{what} exited with code {proc.returncode} while starting; its log ({log}):\n"
                                 + _tail(log))
        if time.monotonic() > deadline:
            raise LocalKubeError(f"{what} did not start within {within:g}s; its log ({log}):\n" + _tail(log))
        time.sleep(0.05)


def up(state_dir: Path, install_crds: Callable[[Path], None], kubeconfig: Path | None = None,
       simulate_pods: bool = False, config: Path | None = None, within: float = STARTUP_TIMEOUT) -> LocalProcesses:
    """Start LocalKube, apply the CRDs with `install_crds(kubeconfig)`, start the operator; record both.

    If anything fails, whatever was started is stopped again.
    """
    state_dir = state_dir.expanduser().resolve()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LocalKubeError(f"cannot create the state directory {state_dir}: {err.strerror}") from None
    current = read_state(state_dir)
    if current is not None:
        running = [what for what, pid in current.pids.items() if alive(pid, COMMAND_MARKS[what])]
        if running:
            raise LocalKubeError(f"a local Kubernetes already runs from {state_dir} ({' and '.join(running)}; "
                                 f"KUBECONFIG={current.kubeconfig}). Stop it first with `dask kube local down"
                                 + ("" if state_dir == default_state_dir() else f" --state-dir {state_dir}") + "`.")
        pidfile(state_dir).unlink()
    kubeconfig = (kubeconfig or state_dir / "kubeconfig").expanduser().resolve()
    try:
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        kubeconfig.unlink(missing_ok=True)  # LocalKube writes it once it answers: its existence means "ready"
    except OSError as err:
        raise LocalKubeError(f"cannot write the kubeconfig {kubeconfig}: {err.strerror}") from None
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    kube_log, operator_log = state_dir / "localkube.log", state_dir / "operator.log"
    args = [*localkube_command(), "--kubeconfig", str(kubeconfig)]
    if simulate_pods:
        args.append("--simulate-pods")
    if config is not None:
        args += ["--config", str(config.expanduser().resolve())]
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        kube = _spawn(args, kube_log, env)
        started.append(("localkube", kube))
        _wait(kubeconfig.exists, kube, "LocalKube", kube_log, within)
        install_crds(kubeconfig)
        operator_log.write_bytes(b"")
        operator = _spawn([sys.executable, "-m", "dask_kube.operator", "--all-namespaces", "--verbose"],
                          operator_log, env)
        started.append(("operator", operator))
        _wait(lambda: b"operator started" in operator_log.read_bytes(), operator, "the operator", operator_log,
              within)
    except BaseException:
        for what, proc in reversed(started):
            _stop_pid(proc.pid, COMMAND_MARKS[what], STOP_TIMEOUT)
        raise
    state = LocalProcesses(state_dir, kubeconfig, kube.pid, operator.pid)
    pidfile(state_dir).write_text(json.dumps({"kubeconfig": str(kubeconfig), "localkube_pid": kube.pid,
                                              "operator_pid": operator.pid}, indent=2) + "\n")
    return state


def _stop_pid(pid: int, mark: bytes, within: float) -> bool:
    """SIGTERM, then SIGKILL after `within` seconds. True if it was running."""
    if not alive(pid, mark):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    while alive(pid, mark):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)
    return True


def down(state_dir: Path, within: float = STOP_TIMEOUT) -> list[str]:
    """Stop what `up` started from `state_dir` (operator first); returns what was running."""
    state_dir = state_dir.expanduser().resolve()
    state = read_state(state_dir)
    if state is None:
        raise LocalKubeError(f"no local Kubernetes was started from {state_dir} (no {pidfile(state_dir).name}); "
                             "start one with `dask kube local up`.")
    stopped = [what for what, pid in state.pids.items() if _stop_pid(pid, COMMAND_MARKS[what], within)]
    pidfile(state_dir).unlink(missing_ok=True)
    return stopped


# -- commands ------------------------------------------------------------------------------------------------------


@click.group("local", help="""A local Kubernetes (LocalKube: pods run as processes on this machine) with the CRDs and
the operator, in the background: for trying dask_kube without a cluster.

\b
Example:
  dask kube local up
  export KUBECONFIG=~/.cache/dask-kube/kubeconfig
  python -c 'from dask_kube import KubeCluster; print(KubeCluster(name="demo", n_workers=2))'
  dask kube local down""")
def local() -> None:
    pass


state_dir_option = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                help="Where the kubeconfig, pidfile and logs go (default: ~/.cache/dask-kube).")


@local.command("up")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PATH", help="Where to write the kubeconfig (default: STATE_DIR/kubeconfig).")
@click.option("--simulate-pods", is_flag=True,
              help="Pods become Running without running anything (for trying manifests, not computations).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="A LocalKube cluster configuration file: nodes (GPU nodes, taints), image "
                                   "mappings, ports, version (see LocalKube's README).")
@state_dir_option
def local_up(kubeconfig_path: Path | None, simulate_pods: bool, config_path: Path | None,
             state_dir: Path | None) -> None:
    """Start LocalKube and the operator in the background and print the kubeconfig to use."""
    from .install import install_packaged_crds

    try:
        started = up(state_dir or default_state_dir(), install_packaged_crds, kubeconfig_path,
                     simulate_pods=simulate_pods, config=config_path)
    except LocalKubeError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"LocalKube (pid {started.localkube_pid}) and the dask_kube operator (pid {started.operator_pid}) "
               f"are running; logs in {started.state_dir}.")
    click.echo(f"export KUBECONFIG={started.kubeconfig}")


@local.command("down")
@state_dir_option
def local_down(state_dir: Path | None) -> None:
    """Stop what `dask kube local up` started (every pod process with it)."""
    try:
        stopped = down(state_dir or default_state_dir())
    except LocalKubeError as err:
        raise click.ClickException(str(err)) from None
    click.echo("Stopped " + (" and ".join(stopped) if stopped else "nothing (it had already exited)") + ".")

