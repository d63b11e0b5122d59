"""The kubelet of LocalKube: each container of a pod bound to this node runs as a local process group.

It behaves like a real kubelet from the API's point of view: status goes through the `status` subresource
(phases, IPs, conditions, container states with CrashLoopBackOff and its real exponential back-off, images it
knows no program for as failed pulls: ErrImagePull, then ImagePullBackOff on the same schedule), probes
gate readiness and restart unhealthy containers, and deletion is preStop hooks, SIGTERM, SIGKILL at the end of
the grace period, Ready=False, then `finalize_pod`. It is also the server's `PodRuntime` for logs, port connections
and exec.

Every container starts in a new session so the whole group can be signalled (the container ends with its first
process, as when a PID namespace loses PID 1), and on Linux with `PR_SET_PDEATHSIG` so that nothing outlives
LocalKube even when it is killed: the signal fires when the spawning thread exits, which is LocalKube's loop
thread, alive until stop.

Simulated pods (server-wide, per node or per pod) become Running and Ready with no process, like KWOK, so that
thousands of pods fit on a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from localkube.apiserver.core import POD_KEY, ApiCore
from localkube.apiserver.errors import ApiError
from localkube.apiserver.server import LogOptions
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Controller
from localkube.controllers.nodes import KUBELET_LABEL, SIMULATE_ANNOTATION
from localkube.node import catalog, imagefs, images
from localkube.node.catalog import CATALOG, Catalog, CatalogEntry, ImagePullError
from localkube.node.images import ConfigError, ImageMapping
from localkube.node.podlogs import ContainerLogs, read_log
from localkube.node.probes import Prober, check
from localkube.node.references import parse as parse_image

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Process = asyncio.subprocess.Process
PRE_STOP_EXTENSION = 2.0  # seconds: the kubelet's one-off extension after a preStop hook overran the grace period

NODE_KEY = ("", "nodes")
HOST_IP = "127.0.0.1"
CONFIG_RETRY = 1.0  # seconds between attempts to create a container whose ConfigMap/Secret is missing
PULL_ERROR_SHOWN = 1.0  # seconds a failed pull shows as ErrImagePull before ImagePullBackOff (at most half the delay)
PIPE_DRAIN = 1.0  # seconds to collect output still buffered in pipes after a container exits
READ_CHUNK = 64 * 1024


class PodNetwork(Protocol):
    """How pods get addresses and a view of the cluster network (implemented by `network.py`)."""

    def allocate_pod_ip(self, pod: Obj) -> str: ...

    def release_pod_ip(self, pod: Obj) -> None: ...

    def pod_environment(self, pod: Obj, ip: str) -> dict[str, str]: ...


class HostNetwork:
    """No pod network: every pod shares the host's loopback address and sees the host's names."""

    def allocate_pod_ip(self, pod: Obj) -> str:
        return HOST_IP

    def release_pod_ip(self, pod: Obj) -> None:
        return None

    def pod_environment(self, pod: Obj, ip: str) -> dict[str, str]:
        return {}


# -- processes -----------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _child_setup(parent: int) -> None:
    """Runs in the child between fork and exec: die with LocalKube's loop thread."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


async def spawn(argv: Sequence[str], env: dict[str, str], cwd: str, *, stdin: int = subprocess.DEVNULL,
                stdout: int = subprocess.PIPE, stderr: int = subprocess.PIPE) -> Process:
    parent = os.getpid()
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
        preexec_fn=lambda: _child_setup(parent))


def signal_group(pid: int, sig: int) -> bool:
    """Signal a container's whole process group; False when nothing is left of it."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def exit_code(returncode: int) -> int:
    """Kubernetes reports death by signal N as 128 + N, like a shell."""
    return 128 - returncode if returncode < 0 else returncode


def start_error(argv: Sequence[str], err: OSError) -> tuple[int, str]:
    """Exit code and message for a program that could not be started (what runc says, in short)."""
    if isinstance(err, FileNotFoundError):
        return 127, f'exec: "{argv[0]}": executable file not found in $PATH'
    if isinstance(err, PermissionError):
        return 126, f'exec: "{argv[0]}": permission denied'
    return 128, f'exec: "{argv[0]}": {err.strerror or err}'


def go_duration(seconds: float) -> str:
    """A duration as Go prints it (`10s`, `1m20s`, `5m0s`, `200ms`): the kubelet's back-off message uses it."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return out + secs + "s"


class CrashBackOff:
    """The kubelet's restart back-off: restart at once after a first crash, then wait base, 2*base, ... cap.

    The back-off is forgotten when a container ran longer than twice the cap (10 minutes by default).
    """

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self.current: float | None = None
        self._last = 0.0

    def delay(self, finished: float) -> float:
        if self.current is None or finished - self._last > 2 * self.cap:
            self.current = None
            return 0.0
        return self.current

    def restarted(self, now: float) -> None:
        self.current = self.base if self.current is None else min(self.current * 2, self.cap)
        self._last = now


# -- containers ----------------------------------------------------------------------------------------------


class Container:
    """What the kubelet knows of one container of a pod: its state machine and its current process."""

    def __init__(self, spec: Obj, *, init: bool, logs: ContainerLogs, backoff: CrashBackOff, waiting: str) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.image: str = str(spec.get("image") or "")
        self.logs = logs
        self.backoff = backoff
        self.pull_backoff = CrashBackOff(backoff.base, backoff.cap)  # the kubelet's image back-off: same schedule
        self.image_changed = asyncio.Event()  # set when the pod spec names a new image for a never-started container
        self.restart_count = 0
        self.instances = 0
        self.state: Obj = {"waiting": {"reason": waiting}}
        self.last_terminated: Obj | None = None
        self.container_id: str | None = None
        self.proc: Process | None = None
        self.env: dict[str, str] = {}
        self.cwd = "/"
        self.image_paths: dict[str, str] = {}  # the image's directories -> this instance's copies (imagefs.py)
        self.started = False
        self.readiness: bool | None = None
        self.extra_groups: set[int] = set()  # exec sessions: they die with the container
        self.finished_at = 0.0

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def ready(self) -> bool:
        if self.init:
            return self.succeeded
        needs_probe = "readinessProbe" in self.spec
        return self.running and self.started and (self.readiness is True or not needs_probe)

    @property
    def succeeded(self) -> bool:
        return self.state.get("terminated", {}).get("exitCode") == 0

    def groups(self) -> list[int]:
        return ([self.proc.pid] if self.proc is not None else []) + sorted(self.extra_groups)

    def move_to_last(self) -> None:
        """The instance that just ended becomes `lastState` (when a new one starts or back-off begins)."""
        if "terminated" in self.state:
            self.last_terminated = self.state["terminated"]

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": f"localkube://{self.image}" if self.container_id else "",
            "started": self.running and self.started,
        }
        if self.container_id:
            out["containerID"] = f"localkube://{self.container_id}"
        return out


class PodWorker:
    """One pod's life on this node: start, supervise, probe, terminate, and report status."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = kubelet.work_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        old = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or ()}

        def make(c: Obj, init: bool, waiting: str) -> Container:
            container = Container(c, init=init, logs=ContainerLogs(self.dir / "logs" / c["name"]),
                                  backoff=CrashBackOff(kubelet.backoff_base, kubelet.backoff_cap), waiting=waiting)
            previous = old.get(c["name"]) if not init else None
            if previous:  # LocalKube restarted: the earlier instance counts, as after a node reboot
                container.restart_count = int(previous.get("restartCount") or 0) + bool(previous.get("containerID"))
            return container

        inits = spec.get("initContainers") or []
        self.init_containers = [make(c, True, "PodInitializing") for c in inits]
        self.containers = [make(c, False, "PodInitializing" if inits else "ContainerCreating")
                           for c in spec.get("containers") or []]
        self.ip: str | None = None
        self.start_time: str | None = None
        self.initialized = not inits
        self.init_failed = False
        self.final = False  # no container will run again (terminated or deleted)
        self.terminating = False
        self.gone = False  # removed from the store (or the kubelet stops): no more status writes
        self._wake = asyncio.Event()
        self._deadline: float | None = None
        self._deadline_changed = asyncio.Event()
        self._life: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._write_pending = False

    # -- lookups -------------------------------------------------------------------------------------------

    def all_containers(self) -> list[Container]:
        return self.init_containers + self.containers

    def find(self, name: str) -> Container | None:
        return next((c for c in self.all_containers() if c.name == name), None)

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._life = asyncio.create_task(self._live(), name=f"pod {self.namespace}/{self.name}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self._adopt_images(pod)
        if pod["metadata"].get("deletionTimestamp"):
            self.begin_termination(int(pod["metadata"].get("deletionGracePeriodSeconds") or 0))

    def _adopt_images(self, pod: Obj) -> None:
        """A container that never started (its image could not be pulled) takes a new image from the pod spec at
        once, as after `kubectl set image`; a started one keeps its image (LocalKube restarts nothing for it)."""
        spec = pod.get("spec") or {}
        specs = {s.get("name"): s for s in (spec.get("initContainers") or []) + (spec.get("containers") or [])}
        for c in self.all_containers():
            new = specs.get(c.name)
            if new is None or c.container_id is not None or str(new.get("image") or "") == c.image:
                continue
            c.spec, c.image = new, str(new.get("image") or "")
            c.pull_backoff = CrashBackOff(c.backoff.base, c.backoff.cap)
            c.image_changed.set()

    async def _live(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.ip = self.kubelet.network.allocate_pod_ip(self.pod)
            self.start_time = self.kubelet.core.now()
            self.publish()
            for c in self.init_containers:
                await self._supervise(c)
                if self.terminating:
                    return
                if not c.succeeded:
                    self.init_failed = self.final = True
                    self.publish()
                    return
            self.initialized = True
            for c in self.containers:
                if "waiting" in c.state:
                    c.state = {"waiting": {"reason": "ContainerCreating"}}
            self.publish()
            await asyncio.gather(*(self._supervise(c) for c in self.containers))
            self.final = True
            self.publish()
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the pod starts terminating."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))

    def _restarts(self, c: Container, code: int) -> bool:
        policy = ("OnFailure" if self.restart_policy != "Never" else "Never") if c.init else self.restart_policy
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    async def _supervise(self, c: Container) -> None:
        """Run a container until it ends for good: restarts, back-off and configuration errors included."""
        loop = asyncio.get_running_loop()
        while not self.terminating:
            try:
                argv = await self._prepare(c)
            except ImagePullError as err:
                await self._pull_back_off(c, err.message)
                continue
            except ConfigError as err:
                c.state = {"waiting": {"reason": err.reason, "message": err.message}}
                self.publish()
                await self._sleep(CONFIG_RETRY)
                continue
            code = await self._run_instance(c, argv)
            if self.terminating or not self._restarts(c, code):
                return
            delay = c.backoff.delay(c.finished_at)
            if delay > 0:
                c.move_to_last()
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                    f"back-off {go_duration(delay)} restarting failed container={c.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})")}}
                self.publish()
                await self._sleep(c.finished_at + delay - loop.time())
                if self.terminating:
                    return
            c.backoff.restarted(loop.time())

    async def _pull_back_off(self, c: Container, message: str) -> None:
        """A failed pull as the kubelet shows it: ErrImagePull, then ImagePullBackOff until the back-off (base,
        doubling up to the cap) has passed since the failure; then the next attempt. A new image ends the wait."""
        loop = asyncio.get_running_loop()
        failed = loop.time()
        c.pull_backoff.restarted(failed)
        delay = c.pull_backoff.current or 0.0
        c.image_changed.clear()
        c.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
        self.publish()
        if await self._pull_wait(c, min(PULL_ERROR_SHOWN, delay / 2)):
            return
        c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c.image}"'}}
        self.publish()
        await self._pull_wait(c, failed + delay - loop.time())

    async def _pull_wait(self, c: Container, seconds: float) -> bool:
        """Sleep; True as soon as the pod terminates or the container's image changes."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(c.image_changed.wait())]
        try:
            done, _pending = await asyncio.wait(waits, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return bool(done)

    def _image(self, c: Container) -> tuple[ImageMapping | None, bool]:
        """The user's mapping for the image, else the catalog's (then True); raises when the image cannot run."""
        kubelet = self.kubelet
        mapping = images.find_mapping(c.image, kubelet.image_map)
        if mapping is not None:
            return mapping, False
        if parse_image(c.image) is None:
            raise catalog.invalid_name(c.image)
        mapping = kubelet.catalog.mapping(c.image)
        if mapping is None and not c.spec.get("command") and not c.spec.get("args"):
            raise catalog.pull_failure(c.image)
        return mapping, mapping is not None

    async def _prepare(self, c: Container) -> list[str]:
        """Resolve the container's environment, program and working directory, and copy its image's directories
        afresh (raises ConfigError)."""
        kubelet = self.kubelet
        ip = self.ip or HOST_IP
        image, builtin = self._image(c)
        defined = images.container_env(self.pod, c.spec, kubelet.lookup, ip, HOST_IP)
        argv = images.container_argv(c.spec, defined, image)
        c.image_paths = await self._image_directories(c, image)
        argv = imagefs.map_argv(argv, c.image_paths)
        env = images.base_environment(image)
        env["HOSTNAME"] = self.name
        env.update(defined)
        # The ServiceAccount token comes as a kubeconfig (not /var/run/secrets/...), unless the container has its own.
        if "KUBECONFIG" not in env and kubelet.credentials is not None:
            kubeconfig = kubelet.credentials(self.pod, self.dir)
            if kubeconfig is not None:
                env["KUBECONFIG"] = str(kubeconfig)
        for name, value in kubelet.api_env.items():  # the container's own variables win, as on a node
            env.setdefault(name, value)
        images.overlay(env, kubelet.network.pod_environment(self.pod, ip))
        if c.image_paths:
            env[imagefs.ENV_VAR] = json.dumps(c.image_paths)
        c.env = env
        c.cwd = str(self._working_dir(c.spec.get("workingDir"), c.image_paths))
        return catalog.host_program(argv, env.get("PATH")) if builtin else argv

    async def _image_directories(self, c: Container, image: ImageMapping | None) -> dict[str, str]:
        """Fresh copies of the image's directories for this instance, as its writable layer (gone with the pod)."""
        if image is None or not image.directories:
            return {}
        try:
            return await asyncio.to_thread(imagefs.fresh_copies, self.dir / "containers" / c.name / "rootfs",
                                           image.directories)
        except (OSError, ValueError) as err:
            raise ConfigError("CreateContainerError", f"copying the directories of image {c.image!r}: {err}")

    def _working_dir(self, requested: str | None, image_paths: imagefs.PathTable) -> Path:
        """`workingDir` in the image's directories, else the host's if it has it, else the same path under the
        pod's own directory."""
        mapped = imagefs.map_path(requested, image_paths) if requested else None
        if mapped is not None:
            Path(mapped).mkdir(parents=True, exist_ok=True)
            return Path(mapped)
        if requested and Path(requested).is_dir():
            return Path(requested)
        path = self.dir / "rootfs" / requested.lstrip("/") if requested else self.dir / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _run_instance(self, c: Container, argv: list[str]) -> int:
        """Start one instance of the container and wait for it to end; returns its exit code."""
        core = self.kubelet.core
        if c.instances:
            c.restart_count += 1
        c.instances += 1
        c.move_to_last()
        c.container_id = uuid.uuid4().hex
        instance_log = c.logs.new_instance(c.container_id)
        started_at = core.now()
        try:
            proc = await spawn(argv, c.env, c.cwd)
        except OSError as err:  # like runc: the container exists but its process never started
            instance_log.close()
            message = "failed to start container process: " + start_error(argv, err)[1]
            self._terminated(c, 128, "StartError", started_at, message)
            return 128
        c.proc = proc
        if self.terminating:  # deletion began while it was starting
            signal_group(proc.pid, signal.SIGTERM)
        c.state = {"running": {"startedAt": started_at}}
        c.started = "startupProbe" not in c.spec
        c.readiness = None
        self.publish()
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [asyncio.create_task(_pump(proc.stdout, "stdout", instance_log.write)),
                 asyncio.create_task(_pump(proc.stderr, "stderr", instance_log.write))]
        probes = asyncio.create_task(self._probe(c, proc)) if not c.init else None
        returncode = await proc.wait()
        for group in c.groups():  # the container ends with its first process
            signal_group(group, signal.SIGKILL)
        c.extra_groups.clear()
        if probes is not None:
            probes.cancel()
        _done, pending = await asyncio.wait(pumps, timeout=PIPE_DRAIN)
        for task in pending:
            task.cancel()
        instance_log.close()
        c.proc = None
        code = exit_code(returncode)
        self._terminated(c, code, "Completed" if code == 0 else "Error", started_at)
        return code

    def _terminated(self, c: Container, code: int, reason: str, started_at: str, message: str = "") -> None:
        term: Obj = {"exitCode": code, "reason": reason, "startedAt": started_at,
                     "finishedAt": self.kubelet.core.now(), "containerID": f"localkube://{c.container_id}"}
        if message:
            term["message"] = message
        c.state = {"terminated": term}
        c.started = False
        c.readiness = None
        c.finished_at = asyncio.get_running_loop().time()
        self.publish()

    # -- probes --------------------------------------------------------------------------------------------

    async def _probe(self, c: Container, proc: Process) -> None:
        """Startup probe first; then readiness and liveness, as long as this instance runs."""
        host = self.ip or HOST_IP

        def attempt(probe: Obj) -> Any:
            return lambda: check(probe, c.spec, host, lambda argv, timeout: self._exec_probe(c, argv, timeout))

        def unhealthy(probe: Obj) -> Any:
            def on_result(ok: bool) -> None:
                if self.kubelet.cut_off(self.pod):
                    return  # partitioned: its processes are frozen only to look silent; really they would pass
                if not ok and c.proc is proc:
                    log.info("container %s of pod %s/%s failed a probe: restarting", c.name, self.namespace, self.name)
                    self._background(self._kill(proc, probe_grace(probe, self.pod)))

            return on_result

        startup = c.spec.get("startupProbe")
        if startup:
            await Prober(startup, attempt(startup), unhealthy(startup), until_success=True).run()
            c.started = True
            self.publish()
        probers = []
        readiness = c.spec.get("readinessProbe")
        if readiness:
            def on_ready(ok: bool) -> None:
                if self.kubelet.cut_off(self.pod):
                    return
                c.readiness = ok
                self.publish()

            probers.append(Prober(readiness, attempt(readiness), on_ready).run())
        liveness = c.spec.get("livenessProbe")
        if liveness:
            probers.append(Prober(liveness, attempt(liveness), unhealthy(liveness)).run())
        await asyncio.gather(*probers)

    async def _exec_probe(self, c: Container, argv: list[str], limit: float) -> int:
        try:
            proc = await spawn(imagefs.map_argv(argv, c.image_paths), c.env, c.cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        except OSError as err:
            return start_error(argv, err)[0]
        try:
            return await asyncio.wait_for(proc.wait(), limit)
        except (TimeoutError, asyncio.CancelledError):
            signal_group(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            raise

    async def _kill(self, proc: Process, grace: float) -> None:
        """SIGTERM the group, SIGKILL whatever is left after `grace` seconds."""
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)

    # -- termination ---------------------------------------------------------------------------------------

    def begin_termination(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace, 0)
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
            self._deadline_changed.set()
            self._deadline_changed = asyncio.Event()
        if not self.terminating:
            self.terminating = True
            self._wake.set()
            self._ending = asyncio.create_task(self._terminate(), name=f"terminate {self.namespace}/{self.name}")

    def _signal_all(self, sig: int) -> None:
        for c in self.all_containers():
            for group in c.groups():
                signal_group(group, sig)

    async def _stop_processes(self) -> None:
        """Run the running containers' preStop hooks, SIGTERM every container, then SIGKILL at the deadline (which
        a new DELETE may bring forward). The hooks spend the same grace period, as on a node."""
        loop = asyncio.get_running_loop()
        await self._pre_stop_hooks()
        self._signal_all(signal.SIGTERM)
        life = self._life
        while life is not None and not life.done():
            assert self._deadline is not None
            remaining = self._deadline - loop.time()
            if remaining <= 0:
                self._signal_all(signal.SIGKILL)
                break
            changed = asyncio.ensure_future(self._deadline_changed.wait())
            await asyncio.wait([life, changed], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
        if life is not None:
            _done, pending = await asyncio.wait([life], timeout=PIPE_DRAIN + 5)
            if pending:
                life.cancel()
                self._signal_all(signal.SIGKILL)

    async def _pre_stop_hooks(self) -> None:
        """Each running container's `lifecycle.preStop` (exec, httpGet, tcpSocket or sleep), concurrently, until it
        ends, its container ends (an exec'd hook dies with its container, as in a PID namespace), or the grace
        period does; then, as the kubelet does, a hook that used the whole period buys SIGTERM two more seconds.
        A failing hook is logged and termination goes on."""
        hooks = [(c, c.proc, hook) for c in self.containers
                 if c.proc is not None and (hook := (c.spec.get("lifecycle") or {}).get("preStop"))]
        if hooks:
            await asyncio.gather(*(self._pre_stop(c, proc, hook) for c, proc, hook in hooks))
            loop = asyncio.get_running_loop()
            if not self.gone and self._deadline is not None and self._deadline <= loop.time():  # not forced
                self._deadline = loop.time() + PRE_STOP_EXTENSION  # a hook used it all: SIGTERM gets a little

    async def _pre_stop(self, c: Container, proc: Process, hook: Obj) -> None:
        loop = asyncio.get_running_loop()
        assert self._deadline is not None
        remaining = self._deadline - loop.time()
        if "sleep" in hook:
            action: Any = asyncio.sleep(float((hook["sleep"] or {}).get("seconds") or 0))
        else:
            action = check({**hook, "timeoutSeconds": max(remaining, 0.001)}, c.spec, self.ip or HOST_IP,
                           lambda argv, limit: self._exec_probe(c, argv, limit))
        hook_task = asyncio.ensure_future(action)
        ended = asyncio.ensure_future(proc.wait())
        try:
            while not (hook_task.done() or ended.done()):
                remaining = self._deadline - loop.time()  # a new DELETE may bring the deadline forward
                if remaining <= 0:
                    break
                changed = asyncio.ensure_future(self._deadline_changed.wait())
                await asyncio.wait([hook_task, ended, changed], timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        finally:
            for task in (hook_task, ended):
                task.cancel()
            await asyncio.gather(hook_task, ended, return_exceptions=True)
        if hook_task.done() and not hook_task.cancelled() and hook_task.result() is False:
            log.info("preStop hook of %s/%s container %s failed", self.namespace, self.name, c.name)

    async def _terminate(self) -> None:
        """Graceful deletion: stop the processes, report them stopped and unready, then release the pod."""
        try:
            await self._stop_processes()
            self.final = True
            for c in self.all_containers():
                if "waiting" in c.state:
                    c.state = {"terminated": c.last_terminated} if c.last_terminated else {"terminated": {
                        "exitCode": 137, "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated"}}
            self._write_status()
            self.kubelet.network.release_pod_ip(self.pod)
            if not self.gone:
                self.kubelet.core.finalize_pod(self.namespace, self.name, self.uid)
        except ApiError as err:
            log.debug("finishing pod %s/%s: %s", self.namespace, self.name, err.message)
        except Exception:
            log.exception("terminating pod %s/%s failed", self.namespace, self.name)

    async def shutdown(self, grace: float, *, remove_files: bool) -> None:
        """The pod is gone from the store, or the kubelet stops: kill everything, write nothing."""
        self.gone = True
        self.begin_termination(grace)
        if self._ending is not None:
            await self._ending
        for task in list(self._tasks):
            task.cancel()
        for c in self.all_containers():
            c.logs.close()
        if remove_files:
            await asyncio.to_thread(shutil.rmtree, self.dir, True)

    # -- status --------------------------------------------------------------------------------------------

    def publish(self) -> None:
        """Write status soon: changes made in the same loop iteration become one write."""
        if not self._write_pending:
            self._write_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._write_pending = False
        try:
            self._write_status()
        except ApiError as err:
            log.debug("status of pod %s/%s: %s", self.namespace, self.name, err.message)

    def _write_status(self) -> None:
        if self.gone or self.kubelet.stopping or self.kubelet.cut_off(self.pod):
            return
        core = self.kubelet.core
        current = core.store.get(POD_KEY, self.namespace, self.name)
        if current is None or current["metadata"].get("uid") != self.uid:
            return
        old = current.get("status") or {}
        new = self._status(old)
        if new != old:
            core.mutate(core.kind_of(POD_KEY), self.namespace, self.name, lambda o: o.__setitem__("status", new),
                        subresource="status", manager="kubelet")

    def phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        running = stopped = succeeded = waiting = 0
        for c in self.containers:
            if c.running:
                running += 1
            elif "terminated" in c.state or c.last_terminated:
                stopped += 1
                term = c.state.get("terminated") or c.last_terminated or {}
                succeeded += term.get("exitCode") == 0
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        policy = "Never" if self.final else self.restart_policy
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"

    def _status(self, old: Obj) -> Obj:
        now = self.kubelet.core.now()
        phase = self.phase()
        status = {k: v for k, v in old.items() if k not in OWNED_STATUS}
        status["phase"] = phase
        previous = {c.get("type"): c for c in old.get("conditions") or ()}
        done = phase in ("Succeeded", "Failed")

        def cond(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
            value = "True" if ok else "False"
            before = previous.get(kind)
            since = before["lastTransitionTime"] if before and before.get("status") == value else now
            out: Obj = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
            if reason:
                out["reason"] = reason
            if message:
                out["message"] = message
            return out

        unready = [c.name for c in self.containers if not c.ready]
        incomplete = [c.name for c in self.init_containers if not c.succeeded]
        not_ready_reason = "PodCompleted" if done else "ContainersNotReady"
        not_ready_message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
        ours = [
            cond("PodReadyToStartContainers", self.ip is not None and not (self.final and self.terminating)),
            cond("Initialized", self.initialized, *(("PodCompleted",) if done and self.initialized else (
                ("ContainersNotInitialized", f"containers with incomplete status: [{' '.join(incomplete)}]")
                if not self.initialized else ()))),
            cond("Ready", not unready, *((not_ready_reason, not_ready_message) if unready else ())),
            cond("ContainersReady", not unready, *((not_ready_reason, not_ready_message) if unready else ())),
            previous.get("PodScheduled") or cond("PodScheduled", True),
        ]
        mine = {c["type"] for c in ours}
        status["conditions"] = ours + [c for t, c in previous.items() if t not in mine]
        status["hostIP"] = HOST_IP
        status["hostIPs"] = [{"ip": HOST_IP}]
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.start_time:
            status["startTime"] = self.start_time
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        status["containerStatuses"] = [c.status() for c in self.containers]
        return status


OWNED_STATUS = frozenset({"phase", "conditions", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
                          "initContainerStatuses", "containerStatuses"})


def probe_grace(probe: Obj | None, pod: Obj) -> float:
    """How long a container killed by a failing probe may take to stop."""
    if probe and probe.get("terminationGracePeriodSeconds") is not None:
        return float(probe["terminationGracePeriodSeconds"])
    return float(pod["spec"].get("terminationGracePeriodSeconds", 30))


async def _pump(stream: asyncio.StreamReader, name: str, write: Any) -> None:
    while data := await stream.read(READ_CHUNK):
        write(name, data)


def simulated_status(pod: Obj, ip: str, now: str) -> Obj:
    """The status of a pod that is Running and Ready without any process (KWOK style)."""
    spec = pod["spec"]
    status = {k: v for k, v in (pod.get("status") or {}).items() if k not in OWNED_STATUS}
    conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or ()}
    for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        if kind != "PodScheduled" or kind not in conditions:
            conditions[kind] = {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
    uid = pod["metadata"]["uid"]

    def container(c: Obj, init: bool) -> Obj:
        image = str(c.get("image") or "")
        state = ({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
                 if init else {"running": {"startedAt": now}})
        return {"name": c["name"], "state": state, "lastState": {}, "ready": True, "restartCount": 0,
                "image": image, "imageID": f"localkube://{image}", "started": not init,
                "containerID": f"localkube://simulated-{uid}-{c['name']}"}

    status.update(phase="Running", conditions=list(conditions.values()), hostIP=HOST_IP, hostIPs=[{"ip": HOST_IP}],
                  podIP=ip, podIPs=[{"ip": ip}], startTime=now,
                  containerStatuses=[container(c, False) for c in spec.get("containers") or ()])
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [container(c, True) for c in spec["initContainers"]]
    return status


# -- the kubelet ---------------------------------------------------------------------------------------------


class _PodEvents(Controller):
    """Hears pod writes inside the store and hands them to the kubelet from its own task."""

    def __init__(self, kubelet: Kubelet) -> None:
        super().__init__(kubelet.core)
        self.kubelet = kubelet

    def wants(self, event: Event) -> bool:
        return event.key == POD_KEY

    def handle(self, event: Event | None) -> None:
        if event is not None:
            self.kubelet.handle_pod(event.type, event.obj)


class Kubelet:
    """Runs the pods bound to `node_name` (or to any Node labelled `localkube.dask.org/kubelet: "true"`)."""

    def __init__(self, core: ApiCore, *, node_name: str = "localkube-node", work_dir: Path,
                 network: PodNetwork | None = None, simulate: bool = False, image_map: Sequence[ImageMapping] = (),
                 backoff_base: float = 10.0, backoff_cap: float = 300.0, stop_grace: float = 2.0,
                 image_catalog: Sequence[CatalogEntry] = CATALOG) -> None:
        self.core = core
        self.node_name = node_name
        self.work_dir = Path(work_dir)
        self.network: PodNetwork = network or HostNetwork()
        self.simulate = simulate
        self.image_map = tuple(image_map)
        self.catalog = Catalog(self.work_dir / "images", image_catalog)  # after the user's mappings
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stop_grace = stop_grace
        self.stopping = False
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._simulated: dict[str, Obj] = {}  # uid -> pod, for pods running without processes
        # (pod, pod directory) -> a kubeconfig acting as the pod's ServiceAccount, or None (set by LocalKube).
        self.credentials: Callable[[Obj, Path], Path | None] | None = None
        # What every container sees of the API server, as a kubelet sets it from the `kubernetes` Service
        # (KUBERNETES_SERVICE_HOST/PORT: how clients know they run in a cluster). Set by LocalKube.
        self.api_env: dict[str, str] = {}
        self._events = _PodEvents(self)
        self._cleanups: set[asyncio.Task[None]] = set()
        self.partitioned: set[str] = set()  # nodes cut off from the API server (a fault: see partition())

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.stopping = False
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._events.start()
        for pod in self.core.store.list(POD_KEY):
            self.handle_pod("ADDED", pod)

    async def stop(self) -> None:
        """Kill every pod process (SIGTERM, SIGKILL after `stop_grace`) and wait for them."""
        self.stopping = True
        await self._events.stop()
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.shutdown(self.stop_grace, remove_files=False) for w in workers),
                             return_exceptions=True)
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    # -- pods ----------------------------------------------------------------------------------------------

    def serves(self, pod: Obj) -> bool:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return False
        if node == self.node_name:
            return True
        obj = self.core.store.get(NODE_KEY, "", node)
        return obj is not None and (obj["metadata"].get("labels") or {}).get(KUBELET_LABEL) == "true"

    def is_simulated(self, pod: Obj) -> bool:
        if self.simulate or (pod["metadata"].get("annotations") or {}).get(SIMULATE_ANNOTATION) == "true":
            return True
        node = self.core.store.get(NODE_KEY, "", pod["spec"].get("nodeName") or "")
        return node is not None and (node["metadata"].get("annotations") or {}).get(SIMULATE_ANNOTATION) == "true"

    def handle_pod(self, event_type: str, pod: Obj) -> None:
        if self.cut_off(pod):
            return  # not heard: reconnect() catches up
        uid = pod["metadata"]["uid"]
        if event_type == DELETED:
            worker = self.workers.pop(uid, None)
            if worker is not None:
                self._cleanup(worker.shutdown(0, remove_files=True))
            if self._simulated.pop(uid, None) is not None:
                self.network.release_pod_ip(pod)
            return
        if self.stopping or not self.serves(pod):
            return
        worker = self.workers.get(uid)
        if worker is None:
            if uid in self._simulated or self.is_simulated(pod):
                self._simulate(pod)
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before a LocalKube restart: nothing to run again
            worker = self.workers[uid] = PodWorker(self, pod)
            worker.start()
        worker.update(pod)

    def _cleanup(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def _simulate(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        kind = self.core.kind_of(POD_KEY)
        if meta.get("deletionTimestamp"):
            stored = self.core.store.get(POD_KEY, ns, name)
            if stored is None or stored["metadata"]["uid"] != uid:
                return  # gone, and maybe replaced under the same name (a StatefulSet's pods are)
            current = self._simulated.get(uid)
            if current is not None:
                def unready(obj: Obj) -> None:
                    for cond in (obj.get("status") or {}).get("conditions") or ():
                        if cond.get("type") in ("Ready", "ContainersReady"):
                            cond.update(status="False", reason="PodCompleted", lastTransitionTime=self.core.now())

                self.core.mutate(kind, ns, name, unready, subresource="status", manager="kubelet")
            self.core.finalize_pod(ns, name, uid)
            return
        if uid in self._simulated:
            return
        ip = self.network.allocate_pod_ip(pod)
        self._simulated[uid] = pod
        status = simulated_status(pod, ip, self.core.now())
        self.core.mutate(kind, ns, name, lambda o: o.__setitem__("status", status), subresource="status",
                         manager="kubelet")

    def lookup(self, plural: str, namespace: str, name: str) -> Obj | None:
        """ConfigMaps and Secrets for container environments, read straight from the store."""
        return self.core.store.get(("", plural), namespace, name)

    def _worker(self, pod: Obj) -> PodWorker | None:
        return self.workers.get(pod["metadata"].get("uid", ""))

    def _container(self, pod: Obj, name: str | None) -> tuple[PodWorker | None, Container | None, str]:
        name = name or pod["spec"]["containers"][0]["name"]
        worker = self._worker(pod)
        return worker, worker.find(name) if worker else None, name

    # -- PodRuntime ----------------------------------------------------------------------------------------

    async def logs(self, pod: Obj, options: LogOptions) -> AsyncIterator[bytes]:
        """The log of the current (or previous) instance of a container; errors surface on first iteration."""
        worker, c, name = self._container(pod, options.container)
        pod_name = pod["metadata"]["name"]
        if worker is None and pod["metadata"].get("uid") in self._simulated:
            return  # simulated containers print nothing
        if c is None:
            raise ApiError(400, f'container "{name}" in pod "{pod_name}" is waiting to start: ContainerCreating')
        if options.previous:
            last = c.last_terminated or {}
            instance = c.logs.find(str(last.get("containerID", "")).removeprefix("localkube://"))
            if instance is None:
                raise ApiError(400, f'previous terminated container "{name}" in pod "{pod_name}" not found')
        else:
            instance = c.logs.current
            if instance is None or ("waiting" in c.state and not c.last_terminated):
                reason = c.state.get("waiting", {}).get("reason", "ContainerCreating")
                raise ApiError(400, f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}')
        async for chunk in read_log(instance, options):
            yield chunk

    async def open_port(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.cut_off(pod):
            raise OSError(f"node {pod['spec'].get('nodeName')} is unreachable")
        worker = self._worker(pod)
        if worker is None:
            if pod["metadata"].get("uid") in self._simulated:
                raise OSError(f"pod {pod['metadata']['name']} is simulated: nothing listens on port {port}")
            raise OSError(f"pod {pod['metadata']['name']} has no running containers")
        return await asyncio.open_connection(worker.ip or HOST_IP, port)

    async def exec(self, pod: Obj, container: str, command: list[str], ws: web.WebSocketResponse) -> None:
        """Run `command` in the container's environment, streaming channels 1/2, stdin from 0, status on 3."""
        _worker, c, name = self._container(pod, container)
        if c is None or not c.running:
            await _send_status(ws, {"metadata": {}, "status": "Failure", "reason": "BadRequest", "code": 400,
                                    "message": f'container "{name}" in pod "{pod["metadata"]["name"]}" is not running'})
            return
        want_stdin = _query_flag(ws, "stdin")
        try:
            proc = await spawn(imagefs.map_argv(command, c.image_paths), c.env, c.cwd,
                               stdin=subprocess.PIPE if want_stdin else subprocess.DEVNULL)
        except OSError as err:
            code, message = start_error(command, err)
            await ws.send_bytes(b"\x02" + message.encode() + b"\n")
            await _send_status(ws, exec_failure(command, code))
            return
        c.extra_groups.add(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None

        async def forward(stream: asyncio.StreamReader, channel: bytes) -> None:
            while data := await stream.read(READ_CHUNK):
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_bytes(channel + data)

        stdin = asyncio.create_task(_feed_stdin(ws, proc))
        try:
            await asyncio.gather(forward(proc.stdout, b"\x01"), forward(proc.stderr, b"\x02"))
            code = exit_code(await proc.wait())
            await _send_status(ws, {"metadata": {}, "status": "Success"} if code == 0 else exec_failure(command, code))
        finally:
            stdin.cancel()
            if proc.returncode is None:
                signal_group(proc.pid, signal.SIGKILL)
            c.extra_groups.discard(proc.pid)

    # -- faults --------------------------------------------------------------------------------------------

    def cut_off(self, pod: Obj) -> bool:
        return bool(self.partitioned) and (pod.get("spec") or {}).get("nodeName") in self.partitioned

    def _on_node(self, node: str) -> list[PodWorker]:
        return [w for w in self.workers.values() if (w.pod.get("spec") or {}).get("nodeName") == node]

    def partition(self, node: str) -> None:
        """Fault hook: cut `node` off. This kubelet no longer hears or writes anything for its pods, and their
        processes are stopped (SIGSTOP): to everyone else they are connections that never answer again."""
        self.partitioned.add(node)
        for worker in self._on_node(node):
            worker._signal_all(signal.SIGSTOP)

    def reconnect(self, node: str) -> None:
        """Heal a partition: the processes continue, and the kubelet acts on what it missed (deletions first)."""
        if node not in self.partitioned:
            return
        self.partitioned.discard(node)
        for worker in self._on_node(node):
            worker._signal_all(signal.SIGCONT)
            current = self.core.store.get(POD_KEY, worker.namespace, worker.name)
            if current is None or current["metadata"].get("uid") != worker.uid:
                self.handle_pod(DELETED, worker.pod)
            else:
                self.handle_pod("MODIFIED", current)
                worker.publish()
        for pod in self.core.store.list(POD_KEY):
            if (pod.get("spec") or {}).get("nodeName") == node and pod["metadata"]["uid"] not in self.workers:
                self.handle_pod("ADDED", pod)

    def kill_container(self, namespace: str, pod: str, container: str | None = None,
                       sig: int = signal.SIGKILL) -> None:
        """Fault hook: signal a container's processes (all containers of the pod when none is named)."""
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.name == pod:
                for c in worker.all_containers():
                    if c.proc is not None and container in (None, c.name):
                        signal_group(c.proc.pid, sig)


def exec_failure(command: Sequence[str], code: int) -> Obj:
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def _send_status(ws: web.WebSocketResponse, status: Obj) -> None:
    with contextlib.suppress(ConnectionResetError):
        await ws.send_bytes(b"\x03" + json.dumps(status).encode())


def _query_flag(ws: web.WebSocketResponse, name: str) -> bool:
    """A flag of the exec request (the runtime is handed the websocket, which keeps its request)."""
    request = getattr(ws, "_req", None)
    return request is not None and request.query.get(name, "").lower() in ("true", "1")


async def _feed_stdin(ws: web.WebSocketResponse, proc: Process) -> None:
    """Client frames [0]+data go to stdin; v5's [255, 0] closes it. A client that hangs up ends the session."""
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == 0 and proc.stdin is not None and data:
                proc.stdin.write(data)
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    await proc.stdin.drain()
            elif channel == 255 and data[:1] == b"\x00" and proc.stdin is not None:
                proc.stdin.close()
        signal_group(proc.pid, signal.SIGKILL)  # the websocket closed before the command ended
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
