"""What every scenario shares: the two tools, their operators as processes, their client runners, and measurement.

The harness runs in our .venv with one LocalKube on a background thread (so it can count API requests per client
by User-Agent). Each tool's operator and client run as subprocesses of that tool's own environment:
dask-kubernetes in .venv-bench-dk; our client in .venv and our operator in .venv-bench-ours, which holds what its
image installs (`dask-kube[operator]`) and nothing more: .venv also holds the test suite's packages, among them
`kubernetes` and `kubernetes-asyncio`, which kopf imports whenever they are installed (~70 MB of RSS that a
deployed operator does not have). Both tools serve the same CRD group (kubernetes.dask.org/v1), so only
one tool's CRDs and operator are installed at a time; switching tools deletes the CRDs (and with them every
object of the other tool).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import procs
import psutil
import yaml
from localkube.cluster import ThreadedLocalKube
from localkube.node.images import ImageMapping

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUR_CRDS = REPO / "dask_kube" / "operator" / "crds"
OURS_VENV = REPO / ".venv-bench-ours"  # our operator's environment, as its image installs it (see above)
HARNESS_AGENT = "bench-harness/1"
SIMULATE = {"localkube.dask.org/simulate": "true"}
GROUP = "/apis/kubernetes.dask.org/v1"
# Images: each tool gets its own image name, so that LocalKube's image map can run dask-kubernetes's pods in its
# own environment (with the dask-scheduler / dask-worker scripts its client still defaults to).
OUR_IMAGE = "bench.local/dask-kube:latest"
DK_IMAGE = "bench.local/dask-kubernetes:latest"
WORKER_OPTS = ["--nthreads", "1", "--memory-limit", "200MB"]


@dataclass
class Tool:
    key: str                 # "ours" | "dk"
    label: str               # as printed
    python: Path             # the interpreter of its environment
    operator_argv: list[str]
    ready_marker: str        # a line the operator logs once its watches run
    crds: Path
    runner: Path
    image: str
    worker_command: list[str]
    version: str = "?"
    extra: dict[str, Any] = field(default_factory=dict)


def ours_tool(venv: Path = OURS_VENV) -> Tool:
    """Our client from this environment, our operator from `venv` (as deployed: see the module's docstring), or
    from this one, with a note, when `venv` is not built."""
    import dask_kube

    python = venv / "bin" / "python"
    extra = {}
    if not python.exists():
        python = Path(sys.executable)
        extra["note"] = (f"operator from {sys.prefix}, not {venv} (not built: make bench-compare builds it); its "
                         "RSS includes test-only packages that kopf imports when installed")
    return Tool(
        key="ours", label="dask_kube", python=Path(sys.executable),
        operator_argv=[str(python), "-m", "dask_kube.operator", "-A", "--verbose"],
        ready_marker="operator started", crds=OUR_CRDS, runner=HERE / "ours_runner.py", image=OUR_IMAGE,
        worker_command=["dask", "worker"], version=dask_kube.__version__, extra=extra)


def dk_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def dk_tool(venv: Path) -> Tool | None:
    """dask-kubernetes from its own environment, or None when that environment is not built."""
    python = dk_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, os, dask_kubernetes as d; "
                            "print(m.version('dask-kubernetes')); print(os.path.dirname(d.__file__))"],
        capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    version, pkg = probe.stdout.split()
    crds = Path(pkg) / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
    return Tool(
        key="dk", label="dask-kubernetes", python=python,
        # The operator image's entrypoint: `kopf run -m dask_kubernetes.operator.controller --all-namespaces`.
        operator_argv=[str(python), "-m", "kopf", "run", "-m", "dask_kubernetes.operator.controller", "-A",
                       "--verbose", "--standalone"],
        ready_marker="Starting the watch-stream for daskclusters", crds=crds, runner=HERE / "dk_runner.py",
        # Its client's default command: `dask-worker` (the image map provides the script).
        image=DK_IMAGE, worker_command=["dask-worker"], version=version)


def dk_image_mapping(venv: Path, scripts: Path) -> ImageMapping:
    """dask-kubernetes's pods run in its environment, with `dask-scheduler` and `dask-worker` scripts (current
    distributed no longer installs them; its client still runs them by default)."""
    scripts.mkdir(parents=True, exist_ok=True)
    python = dk_python(venv).absolute()
    for name, module in (("dask-scheduler", "dask_scheduler"), ("dask-worker", "dask_worker")):
        path = scripts / name
        path.write_text(f'#!/bin/sh\nexec "{python}" -m distributed.cli.{module} "$@"\n')
        path.chmod(0o755)
    bindir = str(python.parent)
    return ImageMapping(DK_IMAGE, path=(str(scripts), bindir), env={"VIRTUAL_ENV": str(venv.absolute())})


def tool_versions(tool: Tool) -> str:
    out = subprocess.run([str(tool.python), "-c", "import importlib.metadata as m; print(' '.join("
                          "f'{p} {m.version(p)}' for p in ('distributed', 'kopf', 'kr8s')))"],
                         capture_output=True, text=True)
    return out.stdout.strip()


# -- statistics -------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One number per round; `note` says why there is none."""

    values: list[float] = field(default_factory=list)
    note: str = ""
    text: str = ""  # a non-numeric result ("no", "yes: 12 keys"), printed as is

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def spread(self) -> float | None:
        return (max(self.values) - min(self.values)) if len(self.values) > 1 else None


# -- the API server ---------------------------------------------------------------------------------------------


class Kube:
    """The harness's view of the one LocalKube: its plain-HTTP listener with our own User-Agent (the tools under
    test use the kubeconfig, HTTPS), and the request counter."""

    def __init__(self, kube: ThreadedLocalKube, tmp: Path) -> None:
        self.kube = kube
        self.tmp = tmp
        self.kubeconfig = Path(kube.kubeconfig)
        self.url = kube.http_url
        self.http: aiohttp.ClientSession | None = None
        self.installed: Tool | None = None

    async def __aenter__(self) -> Kube:
        self.http = aiohttp.ClientSession(base_url=self.url, headers={"User-Agent": HARNESS_AGENT})
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    def counts(self) -> dict[str, int]:
        counts = self.kube.call(self.kube.kube.request_counts)
        return {k: v for k, v in counts.items() if k != HARNESS_AGENT.split("/")[0]}

    def total(self) -> int:
        return sum(self.counts().values())

    async def request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202),
                      content_type: str = "application/json", **params: str) -> Any:
        assert self.http is not None
        data = None if body is None else json.dumps(body)
        async with self.http.request(method, path, data=data, params=params or None,
                                     headers={"Content-Type": content_type}) as resp:
            data = await resp.json(content_type=None)
            if resp.status not in ok:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def get(self, path: str, **params: str) -> Any:
        return await self.request("GET", path, **params)

    async def ensure_namespace(self, ns: str) -> None:
        await self.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}, ok=(201, 409))

    async def delete_namespace(self, ns: str, within: float = 300) -> None:
        await self.request("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
        await until(lambda: self._gone(f"/api/v1/namespaces/{ns}"), within, f"namespace {ns} deleted", 0.25)

    async def _gone(self, path: str) -> bool:
        assert self.http is not None
        async with self.http.get(path) as resp:
            return resp.status == 404

    async def pods(self, ns: str | None, selector: str = "", phase: str | None = None) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods"
        params = {"labelSelector": selector}
        if phase:
            params["fieldSelector"] = f"status.phase={phase}"
        return (await self.get(path, **params))["items"]

    # -- installing a tool ----------------------------------------------------------------------------------

    async def install(self, tool: Tool) -> None:
        """This tool's CRDs, replacing the other tool's (and every object they held)."""
        if self.installed is tool:
            return
        for plural in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
            # Left-overs of a failed round: their operator is gone, so nobody would remove their finalizers.
            listing = await self.request("GET", f"{GROUP}/{plural}", ok=(200, 404))
            for item in (listing or {}).get("items") or []:
                meta = item["metadata"]
                if meta.get("finalizers"):
                    await self.request("PATCH", f"{GROUP}/namespaces/{meta['namespace']}/{plural}/{meta['name']}",
                                       {"metadata": {"finalizers": None}}, ok=(200, 404),
                                       content_type="application/merge-patch+json")
        for plural in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.kubernetes.dask.org"
            await self.request("DELETE", path, ok=(200, 202, 404))
            await until(lambda p=path: self._gone(p), 120, f"CRD {plural} deleted", 0.1)
        for file in sorted(tool.crds.glob("*.yaml")):
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    await self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)

        async def established() -> bool:
            crds = (await self.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"))["items"]
            mine = [c for c in crds if c["spec"]["group"] == "kubernetes.dask.org"]
            return len(mine) >= 4 and all(any(x["type"] == "Established" and x["status"] == "True"
                                              for x in (c.get("status") or {}).get("conditions") or [])
                                          for c in mine)

        await until(established, 30, "CRDs established", 0.05)
        self.installed = tool


async def until(check: Callable[[], Awaitable[bool]], limit: float, what: str, every: float = 0.1) -> float:
    start = time.perf_counter()
    while not await check():
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"{what}: not reached within {limit:.0f} s")
        await asyncio.sleep(every)
    return time.perf_counter() - start


# -- operators --------------------------------------------------------------------------------------------------


@dataclass
class Usage:
    peak_rss_mb: float
    cpu_seconds: float


class Operator:
    """A tool's operator as a process of its own environment, started fresh so its peak RSS is its own."""

    def __init__(self, tool: Tool, kube: Kube, log: Path) -> None:
        self.tool, self.kube, self.log = tool, kube, log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kube.kubeconfig))
        env.pop("VIRTUAL_ENV", None)
        self.proc = procs.popen(  # (returns at once; the process outlives this call)
            self.tool.operator_argv, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=self.kube.tmp)

        async def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.tool.label} operator exited:\n{self.log.read_text()[-3000:]}")
            return self.tool.ready_marker in self.log.read_text(errors="replace")

        await until(ready, 60, f"{self.tool.label} operator started", 0.05)

    def usage(self) -> Usage:
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        cpu = proc.cpu_times()
        peak = 0.0
        with contextlib.suppress(OSError), open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
        return Usage(peak_rss_mb=peak or proc.memory_info().rss / 2**20, cpu_seconds=cpu.user + cpu.system)

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(procs.stop, self.proc, 30)
        self.proc = None


@contextlib.asynccontextmanager
async def operator(tool: Tool, kube: Kube, tag: str) -> AsyncIterator[Operator]:
    await kube.install(tool)
    op = Operator(tool, kube, kube.tmp / f"operator-{tool.key}-{tag}.log")
    await op.start()
    try:
        yield op
    finally:
        await op.stop()


# -- client runners ---------------------------------------------------------------------------------------------


class Runner:
    """A tool's client in its own environment (runner.py protocol): JSON events on stdout, commands on stdin."""

    def __init__(self, tool: Tool, kube: Kube, command: str, args: dict[str, Any], log: Path) -> None:
        self.tool, self.kube, self.command, self.args, self.log = tool, kube, command, args, log
        self.proc: asyncio.subprocess.Process | None = None
        self._log = log.open("ab")

    async def start(self) -> None:
        env = dict(os.environ, KUBECONFIG=str(self.kube.kubeconfig), PYTHONUNBUFFERED="1")
        env.pop("VIRTUAL_ENV", None)
        self.proc = await asyncio.create_subprocess_exec(
            str(self.tool.python), str(self.tool.runner), self.command, json.dumps(self.args),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log, env=env,
            cwd=self.kube.tmp, **procs.popen_kwargs())
        procs.track(self.proc.pid)

    async def event(self, timeout: float = 600) -> dict[str, Any]:  # noqa: ASYNC109
        """The next JSON event; an error event or an exit raises with the runner's log."""
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                await self.proc.wait()
                raise RuntimeError(f"{self.tool.label} runner exited {self.proc.returncode}: {self.tail()}")
            if line.startswith(b"@@ "):
                event = json.loads(line[3:])
                if event.get("event") == "error":
                    raise RuntimeError(f"{self.tool.label} runner: {event.get('error')}")
                return event
            self._log.write(line)

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def finish(self, timeout: float = 120) -> None:  # noqa: ASYNC109
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            await self.send("stop")
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        procs.reap_group(self.proc.pid)  # whatever it left in its group
        self._log.flush()

    def tail(self) -> str:
        self._log.flush()
        return self.log.read_text(errors="replace")[-2500:]


@contextlib.asynccontextmanager
async def runner(tool: Tool, kube: Kube, command: str, args: dict[str, Any], tag: str) -> AsyncIterator[Runner]:
    run = Runner(tool, kube, command, args, kube.tmp / f"runner-{tool.key}-{tag}.log")
    await run.start()
    try:
        yield run
    finally:
        await run.finish()
