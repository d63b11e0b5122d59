"""The LocalKube kubelet against an in-process LocalKube: real processes, real timings, real clients.

Each test starts its own LocalKube with a `Kubelet` (a small back-off base where back-off matters), creates pods
bound to `localkube-node` through `ApiCore` or HTTP, and waits on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localkube.apiserver.core import POD_KEY
from localkube.apiserver.store import Event
from localkube.cluster import LocalKube
from localkube.node.images import ImageMapping
from localkube.node.kubelet import Kubelet

pytestmark = pytest.mark.timeout(120)

NODE = "localkube-node"
PY = sys.executable
TS = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


# ------------------------------------------------------------------------------------------ helpers


class Cluster:
    """A LocalKube with our kubelet as its pod runtime, plus shortcuts for the tests."""

    def __init__(self, kube: LocalKube, kubelet: Kubelet) -> None:
        self.kube = kube
        self.kubelet = kubelet
        self.core = kube.core
        self.pods = kube.core.kind_of(POD_KEY)
        self.events: list[tuple[float, Event]] = []
        kube.store.add_listener(self._record)

    def _record(self, event: Event) -> None:
        if event.key == POD_KEY:
            self.events.append((time.monotonic(), event))

    def create(self, name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **spec.pop("metadata", {})},
                "spec": {"nodeName": NODE, "containers": containers, **spec}}
        return self.core.create(self.pods, "default", body)[0]

    def create_object(self, plural: str, body: dict[str, Any]) -> None:
        self.core.create(self.core.kind_of(("", plural)), "default", body)

    def pod(self, name: str) -> dict[str, Any] | None:
        return self.kube.store.get(POD_KEY, "default", name)

    def status(self, name: str) -> dict[str, Any]:
        pod = self.pod(name)
        return (pod or {}).get("status") or {}

    def container(self, name: str, index: int = 0) -> dict[str, Any]:
        statuses = self.status(name).get("containerStatuses") or [{}]
        return statuses[index]

    def condition(self, name: str, kind: str) -> str | None:
        return next((c["status"] for c in self.status(name).get("conditions") or () if c["type"] == kind), None)

    def pid(self, name: str, container: int = 0) -> int:
        pod = self.pod(name)
        assert pod is not None
        proc = self.kubelet.workers[pod["metadata"]["uid"]].containers[container].proc
        assert proc is not None
        return proc.pid

    async def get(self, path: str, **params: str) -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.get(self.kube.http_url + path, params=params) as resp:
            return resp.status, await resp.read()

    async def log(self, name: str, **params: str) -> tuple[int, bytes]:
        return await self.get(f"/api/v1/namespaces/default/pods/{name}/log", **params)


async def wait_for(condition: Callable[[], Any], within: float = 20.0, what: str = "condition") -> Any:
    """Poll a cheap in-process condition until it is truthy, yielding to the loop between checks."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, **options: Any) -> AsyncIterator[Cluster]:
    async with LocalKube(state_dir=tmp_path / "state", run_pods=False, http_port=0) as kube:
        kubelet = Kubelet(kube.core, work_dir=tmp_path / "kubelet", **options)
        await kubelet.start()
        kube.extensions.append(kubelet)  # LocalKube.stop stops it
        kube.server.runtime = kubelet
        yield Cluster(kube, kubelet)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def kubectl(kube: LocalKube, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """The real kubectl, run without blocking the loop that serves it."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not on PATH")
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), KUBECACHEDIR=str(tmp_path / "kubectl-cache"))
    proc = await asyncio.create_subprocess_exec(binary, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def exec_frames(url: str, pod: str, command: list[str], *, protocol: str = "v4.channel.k8s.io",
                      stdin: bytes | None = None) -> dict[int, bytes]:
    """Drive the exec websocket like a client: returns the bytes received on each channel."""
    params = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
    if stdin is not None:
        params.append(("stdin", "true"))
    query = "&".join(f"{k}={aiohttp.helpers.quote(v, safe='')}" for k, v in params)
    frames: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{url}/api/v1/namespaces/default/pods/{pod}/exec?{query}", protocols=[protocol]) as ws:
        assert ws.protocol == protocol
        if stdin is not None:
            await ws.send_bytes(b"\x00" + stdin)
            await ws.send_bytes(b"\xff\x00")  # v5: close stdin
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                frames[msg.data[0]] = frames.get(msg.data[0], b"") + msg.data[1:]
    return frames


# ------------------------------------------------------------------------------------------ tests


async def test_pod_runs_to_completion_with_logs(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("hello", [{"name": "main", "image": "python:3.11", "command": [PY, "-c", "print('hi')"]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.status("hello").get("phase") == "Succeeded", what="Succeeded")
        term = c.container("hello")["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (0, "Completed")
        assert c.container("hello")["containerID"].startswith("localkube://")
        assert c.condition("hello", "Ready") == "False"
        assert c.status("hello")["podIP"] == "127.0.0.1"
        phases = [e.obj["status"].get("phase") for _, e in c.events if e.obj["metadata"]["name"] == "hello"]
        assert phases[0] == "Pending" and phases[-1] == "Succeeded"
        assert await c.log("hello", container="main") == (200, b"hi\n")
        code, out, err = await kubectl(c.kube, tmp_path, "logs", "hello")
        assert (code, out) == (0, "hi\n"), err


async def test_http_server_becomes_ready_and_is_reachable(tmp_path: Path) -> None:
    port = free_port()
    async with cluster(tmp_path) as c:
        c.create("web", [{
            "name": "web", "image": "python:3.11",
            "command": ["python", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        }])
        await wait_for(lambda: c.condition("web", "Ready") == "True", what="Ready")
        assert c.condition("web", "ContainersReady") == "True"
        assert c.status("web")["phase"] == "Running"
        readiness = [e.obj["status"] for _, e in c.events if e.obj["metadata"]["name"] == "web"]
        assert any(s["containerStatuses"][0]["state"].get("running") and not s["containerStatuses"][0]["ready"]
                   for s in readiness if s.get("containerStatuses")), "running but unready before the probe"
        pod = c.pod("web")
        assert pod is not None
        reader, writer = await c.kubelet.open_port(pod, port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.0 200")
        writer.close()


async def test_crash_loop_back_off_doubles_up_to_the_cap(tmp_path: Path) -> None:
    async with cluster(tmp_path, backoff_base=0.2, backoff_cap=0.8) as c:
        pod = c.create("crash", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo crash; exit 3"]}])
        await wait_for(lambda: c.container("crash").get("restartCount", 0) >= 5, what="5 restarts")
        starts: dict[int, float] = {}
        for moment, event in c.events:
            statuses = (event.obj.get("status") or {}).get("containerStatuses") or [{}]
            if "running" in statuses[0].get("state", {}) or statuses[0].get("containerID"):
                starts.setdefault(statuses[0]["restartCount"], moment)
        gaps = [starts[i + 1] - starts[i] for i in range(5)]
        print("restart gaps (s):", [round(g, 3) for g in gaps])
        assert gaps[0] < 0.15, "the first restart is immediate"
        assert 1.6 < gaps[2] / gaps[1] < 2.4 and 1.6 < gaps[3] / gaps[2] < 2.4, gaps
        assert 0.75 < gaps[4] / gaps[3] < 1.3, f"capped at 0.8s: {gaps}"
        uid = pod["metadata"]["uid"]
        messages = {(e.obj["status"]["containerStatuses"][0]["state"].get("waiting") or {}).get("message")
                    for _, e in c.events if e.obj.get("status", {}).get("containerStatuses")}
        assert f"back-off 200ms restarting failed container=c pod=crash_default({uid})" in messages
        assert f"back-off 800ms restarting failed container=c pod=crash_default({uid})" in messages
        status = c.container("crash")
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["lastState"]["terminated"]["reason"] == "Error"
        assert c.status("crash")["phase"] == "Running"
        assert await c.log("crash", container="c", previous="true") == (200, b"crash\n")


async def test_failed_liveness_probe_restarts_the_container(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("live", [{
            "name": "c", "image": "busybox", "command": ["sleep", "60"],
            "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 1},
        }], terminationGracePeriodSeconds=5)
        await wait_for(lambda: c.container("live").get("restartCount") == 1, what="a restart")
        last = c.container("live")["lastState"]["terminated"]
        assert last["exitCode"] == 128 + signal.SIGTERM, last


async def test_readiness_tcp_probe_and_startup_probe(tmp_path: Path) -> None:
    port = free_port()
    marker = tmp_path / "started"
    server = f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)"
    async with cluster(tmp_path) as c:
        c.create("tcp", [{
            "name": "c", "image": "python", "command": [PY, "-c", server],
            "startupProbe": {"exec": {"command": ["test", "-e", str(marker)]}, "periodSeconds": 1,
                             "failureThreshold": 30},
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
        }])
        await wait_for(lambda: "running" in c.container("tcp").get("state", {}), what="running")
        await asyncio.sleep(0)  # the startup probe has not passed: neither started nor ready
        assert c.container("tcp")["started"] is False and c.condition("tcp", "Ready") == "False"
        marker.touch()
        await wait_for(lambda: c.condition("tcp", "Ready") == "True", what="Ready after startup")
        assert c.container("tcp")["started"] is True


async def test_graceful_deletion_kills_at_the_deadline(tmp_path: Path) -> None:
    stubborn = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); " \
               "time.sleep(60)"
    async with cluster(tmp_path) as c:
        c.create("stubborn", [{"name": "c", "image": "python", "command": [PY, "-c", stubborn]}],
                 terminationGracePeriodSeconds=2)
        c.create("polite", [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}])
        await wait_for(lambda: c.status("polite").get("phase") == "Running", what="polite running")
        await wait_for(lambda: (c.kubelet.workers[c.pod("stubborn")["metadata"]["uid"]].containers[0].logs.current
                                .path.read_bytes().count(b"armed")), what="handler armed")
        pid = c.pid("stubborn")
        started = time.monotonic()
        c.core.delete(c.pods, "default", "stubborn")
        c.core.delete(c.pods, "default", "polite")
        await wait_for(lambda: c.pod("polite") is None, within=5, what="polite removed")
        polite_took = time.monotonic() - started
        await wait_for(lambda: c.pod("stubborn") is None, within=10, what="stubborn removed")
        took = time.monotonic() - started
        print(f"SIGTERM-ignoring pod removed after {took:.2f}s (grace 2s); polite pod after {polite_took:.2f}s")
        assert 1.9 <= took <= 3.0
        assert polite_took < 1.5
        assert gone(pid)
        mine = [e for _, e in c.events if e.obj["metadata"]["name"] == "stubborn"]
        assert mine[-1].type == "DELETED"
        last_status = mine[-2].obj["status"]
        conditions = {x["type"]: x["status"] for x in last_status["conditions"]}
        assert conditions["Ready"] == "False" and conditions["ContainersReady"] == "False"
        assert last_status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
        assert last_status["phase"] == "Failed"


async def test_pre_stop_hooks_run_before_sigterm_within_the_grace_period(tmp_path: Path) -> None:
    """preStop runs first and SIGTERM waits for it; a hook ends with its container, or at the grace period."""
    main = ("import pathlib,signal,sys,time; d=pathlib.Path(sys.argv[1]); "
            "signal.signal(signal.SIGTERM, lambda *_: (d.joinpath('term').touch(), sys.exit(0))); "
            "[time.sleep(0.02) for _ in iter(lambda: d.joinpath('quit').exists(), True)]")
    hook = "import pathlib,sys,time; d=pathlib.Path(sys.argv[1]); d.joinpath('hook').touch(); time.sleep(600)"

    def pod(name: str, grace: int) -> tuple[Path, list[dict[str, Any]], int]:
        d = tmp_path / name
        d.mkdir()
        return d, [{"name": "c", "image": "python", "command": [PY, "-c", main, str(d)],
                    "lifecycle": {"preStop": {"exec": {"command": [PY, "-c", hook, str(d)]}}}}], grace

    async with cluster(tmp_path) as c:
        pods = {name: pod(name, grace) for name, grace in (("ends", 60), ("overdue", 2))}
        for name, (_d, containers, grace) in pods.items():
            c.create(name, containers, terminationGracePeriodSeconds=grace)
        await wait_for(lambda: all(c.status(n).get("phase") == "Running" for n in pods), what="both running")
        started = time.monotonic()
        for name in pods:
            c.core.delete(c.pods, "default", name)
        ends, overdue = pods["ends"][0], pods["overdue"][0]
        await wait_for(lambda: ends.joinpath("hook").exists() and overdue.joinpath("hook").exists(),
                       what="both hooks started")
        assert not ends.joinpath("term").exists() and c.pod("ends") is not None, "no SIGTERM while the hook runs"
        # The container ends on its own: its hook ends with it, long before the grace period.
        ends.joinpath("quit").touch()
        await wait_for(lambda: c.pod("ends") is None, within=10, what="the pod whose container ended to go")
        assert not ends.joinpath("term").exists()
        assert time.monotonic() - started < 10
        # A hook that outlasts the grace period: SIGTERM at its end, with the kubelet's 2 s extension to act on it.
        await wait_for(lambda: c.pod("overdue") is None, within=10, what="the overdue pod to go")
        assert 1.9 <= time.monotonic() - started <= 5
        assert overdue.joinpath("term").exists()


async def test_force_deletion_kills_at_once(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("doomed", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; sleep 60"]}])
        await wait_for(lambda: c.status("doomed").get("phase") == "Running", what="running")
        pid = c.pid("doomed")
        c.core.delete(c.pods, "default", "doomed", grace_period=0)
        assert c.pod("doomed") is None
        await wait_for(lambda: group_gone(pid), within=3, what="processes killed")


async def test_environment_expansion_and_references(tmp_path: Path) -> None:
    script = "import json,os,sys; print(json.dumps({'env': dict(os.environ), 'argv': sys.argv[1:], " \
             "'cwd': os.getcwd()}))"
    async with cluster(tmp_path) as c:
        c.create_object("configmaps", {"metadata": {"name": "cm"}, "data": {"color": "blue", "size": "L"}})
        c.create_object("secrets", {"metadata": {"name": "sec"}, "data": {"token": "czNjcjN0"}})
        c.create("env", [{
            "name": "c", "image": "python", "command": ["python", "-c", script],
            "args": ["$(GREETING)", "$$(GREETING)", "$(UNKNOWN)"],
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "NAME", "value": "world"},
                {"name": "GREETING", "value": "hello $(NAME)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "color"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            ],
            "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}},
        }], restartPolicy="Never", metadata={"labels": {"app": "demo"}})
        await wait_for(lambda: c.status("env").get("phase") == "Succeeded", what="Succeeded")
        status, body = await c.log("env")
        assert status == 200
        data = json.loads(body)
        env = data["env"]
        assert data["argv"] == ["hello world", "$(GREETING)", "$(UNKNOWN)"]
        assert {k: env.get(k) for k in ("GREETING", "POD", "NS", "APP", "IP", "NODE", "COLOR", "TOKEN", "MEM",
                                        "CM_color", "CM_size", "HOSTNAME")} == {
            "GREETING": "hello world", "POD": "env", "NS": "default", "APP": "demo", "IP": "127.0.0.1",
            "NODE": NODE, "COLOR": "blue", "TOKEN": "s3cr3t", "MEM": "256", "CM_color": "blue", "CM_size": "L",
            "HOSTNAME": "env"}
        assert "OPT" not in env
        # The python image's bin directory (catalog.py) first, then this interpreter's.
        assert env["PATH"].split(os.pathsep)[:2] == [str(tmp_path / "kubelet" / "images" / "python" / "bin"),
                                                     os.path.dirname(PY)]
        assert Path(data["cwd"]).is_relative_to(tmp_path / "kubelet")


async def test_missing_config_map_waits_then_starts(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("later", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo $V"],
                            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "v"}}}]}],
                 restartPolicy="Never")
        waiting = await wait_for(lambda: c.container("later").get("state", {}).get("waiting", {}).get("message"),
                                 what="config error")
        assert c.container("later")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        assert waiting == 'configmap "late" not found'
        assert c.status("later")["phase"] == "Pending"
        status, body = await c.log("later")
        assert status == 400
        assert json.loads(body)["message"] == \
            'container "c" in pod "later" is waiting to start: CreateContainerConfigError'
        c.create_object("configmaps", {"metadata": {"name": "late"}, "data": {"v": "arrived"}})
        await wait_for(lambda: c.status("later").get("phase") == "Succeeded", what="Succeeded")
        assert await c.log("later") == (200, b"arrived\n")


async def test_log_options(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f"for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; while [ ! -e {gate} ]; do sleep 0.05; done; " \
             "printf last"
    async with cluster(tmp_path) as c:
        c.create("chatty", [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.kubelet.workers and c.status("chatty").get("phase") == "Running", what="running")
        await wait_for(lambda: b"oops" in c.kubelet.workers[c.pod("chatty")["metadata"]["uid"]]
                       .containers[0].logs.current.path.read_bytes(), what="output")
        follow = asyncio.create_task(c.log("chatty", follow="true"))
        status, body = await c.log("chatty", tailLines="2")
        assert (status, body) == (200, b"line5\noops\n")
        await asyncio.sleep(0.1)
        assert not follow.done(), "follow streams while the container runs"
        gate.touch()
        assert await asyncio.wait_for(follow, 10) == (200, b"line1\nline2\nline3\nline4\nline5\noops\nlast")
        assert c.status("chatty")["phase"] == "Succeeded"
        status, body = await c.log("chatty", timestamps="true", tailLines="1")
        assert status == 200 and TS.match(body) and body.endswith(b" last"), body
        assert await c.log("chatty", limitBytes="8") == (200, b"line1\nli")
        assert await c.log("chatty", sinceSeconds="3600", tailLines="1") == (200, b"last")
        assert await c.log("chatty", sinceTime="2999-01-01T00:00:00Z") == (200, b"")
        status, body = await c.log("chatty", previous="true")
        assert status == 400
        assert json.loads(body)["message"] == 'previous terminated container "c" in pod "chatty" not found'
        code, out, err = await kubectl(c.kube, tmp_path, "logs", "chatty", "--tail=2")
        assert (code, out) == (0, "oops\nlast"), err
        code, out, err = await kubectl(c.kube, tmp_path, "logs", "chatty", "--previous")
        assert code == 1
        assert 'previous terminated container "c" in pod "chatty" not found' in err


async def test_exec(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("box", [{"name": "c", "image": "busybox", "command": ["sleep", "60"], "workingDir": str(tmp_path),
                          "env": [{"name": "WHO", "value": "pod"}]}])
        await wait_for(lambda: c.status("box").get("phase") == "Running", what="running")
        frames = await exec_frames(c.kube.http_url, "box", ["sh", "-c", "echo $WHO; pwd; echo err >&2"])
        assert frames[1] == f"pod\n{tmp_path}\n".encode() and frames[2] == b"err\n"
        assert json.loads(frames[3]) == {"metadata": {}, "status": "Success"}
        frames = await exec_frames(c.kube.http_url, "box", ["sh", "-c", "exit 3"])
        status = json.loads(frames[3])
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
        frames = await exec_frames(c.kube.http_url, "box", ["no-such-program-here"])
        assert json.loads(frames[3])["details"]["causes"][0]["message"] == "127"
        assert b"executable file not found" in frames[2]
        frames = await exec_frames(c.kube.http_url, "box", ["cat"], protocol="v5.channel.k8s.io", stdin=b"typed")
        assert frames[1] == b"typed" and json.loads(frames[3])["status"] == "Success"
        code, out, err = await kubectl(c.kube, tmp_path, "exec", "box", "--", "sh", "-c", "echo via-kubectl; exit 4")
        assert out == "via-kubectl\n" and code == 4, err
        # A client that hangs up ends its command.
        container = c.kubelet.workers[c.pod("box")["metadata"]["uid"]].containers[0]
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"{c.kube.http_url}/api/v1/namespaces/default/pods/box/exec?command=sleep&command=60&stdout=true",
                protocols=["v4.channel.k8s.io"]):
            session_pgid = await wait_for(lambda: container.extra_groups and min(container.extra_groups),
                                          what="exec started")
        await wait_for(lambda: group_gone(session_pgid), within=5, what="exec killed after hang-up")


async def test_image_map_adds_path_and_env(tmp_path: Path) -> None:
    bin_dir = tmp_path / "special-bin"
    bin_dir.mkdir()
    tool = bin_dir / "special-tool"
    tool.write_text("#!/bin/sh\necho tool:$MAPPED\n")
    tool.chmod(0o755)
    mapping = ImageMapping("example.com/special:*", path=(str(bin_dir),), env={"MAPPED": "yes"})
    async with cluster(tmp_path, image_map=[mapping]) as c:
        c.create("mapped", [{"name": "c", "image": "example.com/special:1.0", "command": ["special-tool"]}],
                 restartPolicy="Never")
        c.create("plain", [{"name": "c", "image": "example.com/other:1.0", "command": ["special-tool"]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.status("mapped").get("phase") == "Succeeded", what="mapped Succeeded")
        assert await c.log("mapped") == (200, b"tool:yes\n")
        await wait_for(lambda: c.status("plain").get("phase") == "Failed", what="plain Failed")
        term = c.container("plain")["state"]["terminated"]
        assert term["reason"] == "StartError" and "executable file not found" in term["message"]


async def test_init_containers_run_in_order_first(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("init", [{"name": "main", "image": "busybox", "command": ["sh", "-c", "cat order"]}],
                 initContainers=[{"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one >> order"]},
                                 {"name": "two", "image": "busybox", "command": ["sh", "-c", "echo two >> order"]}],
                 restartPolicy="Never")
        await wait_for(lambda: c.status("init").get("phase") == "Succeeded", what="Succeeded")
        assert await c.log("init") == (200, b"one\ntwo\n")
        inits = c.status("init")["initContainerStatuses"]
        assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]
        assert c.condition("init", "Initialized") == "True"
        c.create("badinit", [{"name": "main", "image": "busybox", "command": ["true"]}],
                 initContainers=[{"name": "fail", "image": "busybox", "command": ["false"]}], restartPolicy="Never")
        await wait_for(lambda: c.status("badinit").get("phase") == "Failed", what="Failed")
        assert c.condition("badinit", "Initialized") == "False"
        assert c.container("badinit")["state"]["waiting"]["reason"] == "PodInitializing"


async def test_kill_container_fault_restarts_under_always(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("victim", [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}])
        await wait_for(lambda: c.status("victim").get("phase") == "Running", what="running")
        first = c.pid("victim")
        c.kubelet.kill_container("default", "victim")
        await wait_for(lambda: c.container("victim").get("restartCount") == 1
                       and "running" in c.container("victim")["state"], what="restarted")
        assert c.container("victim")["lastState"]["terminated"]["exitCode"] == 137
        assert c.pid("victim") != first


async def test_simulated_pods_scale(tmp_path: Path) -> None:
    async with cluster(tmp_path, simulate=True) as c:
        started = time.monotonic()
        for i in range(200):
            c.create(f"sim-{i}", [{"name": "worker", "image": "ghcr.io/dask/dask:latest"}])
        await wait_for(lambda: all(c.condition(f"sim-{i}", "Ready") == "True" for i in range(200)),
                       what="200 simulated pods Ready")
        took = time.monotonic() - started
        print(f"200 simulated pods Running and Ready in {took:.2f}s")
        assert took < 10
        assert c.status("sim-7")["phase"] == "Running" and c.container("sim-7")["ready"] is True
        assert not c.kubelet.workers
        c.core.delete(c.pods, "default", "sim-7")
        await wait_for(lambda: c.pod("sim-7") is None, within=5, what="simulated pod removed")
        assert await c.log("sim-8", container="worker") == (200, b"")


async def test_simulate_annotation_on_a_real_kubelet(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        c.create("fake", [{"name": "c", "image": "busybox"}],
                 metadata={"annotations": {"localkube.dask.org/simulate": "true"}})
        await wait_for(lambda: c.condition("fake", "Ready") == "True", what="simulated Ready")
        assert not c.kubelet.workers


async def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    async with cluster(tmp_path, stop_grace=0.5) as c:
        c.create("a", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 60 & sleep 60"]}])
        c.create("b", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; sleep 60"]}])
        await wait_for(lambda: all(c.status(n).get("phase") == "Running" for n in "ab"), what="running")
        groups = [c.pid("a"), c.pid("b")]
        started = time.monotonic()
        await c.kubelet.stop()
        print(f"kubelet stopped in {time.monotonic() - started:.2f}s")
        await wait_for(lambda: all(group_gone(g) for g in groups), within=3, what="no process left")


async def test_processes_die_with_a_killed_localkube(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a SIGKILLed LocalKube takes its pods' processes with it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    program = textwrap.dedent(f"""
        import asyncio, pathlib
        from localkube.apiserver.core import POD_KEY
        from localkube.cluster import LocalKube
        from localkube.node.kubelet import Kubelet

        async def main():
            async with LocalKube(state_dir={str(tmp_path / 'child')!r}, run_pods=False) as kube:
                kubelet = Kubelet(kube.core, work_dir=pathlib.Path({str(tmp_path / 'work')!r}))
                await kubelet.start()
                kube.core.create(kube.core.kind_of(POD_KEY), "default", {{"metadata": {{"name": "p"}},
                    "spec": {{"nodeName": "localkube-node", "containers": [{{"name": "c", "image": "x",
                    "command": ["sleep", "60"]}}]}}}})
                while not kubelet.workers or next(iter(kubelet.workers.values())).containers[0].proc is None:
                    await asyncio.sleep(0.01)
                print(next(iter(kubelet.workers.values())).containers[0].proc.pid, flush=True)
                await asyncio.sleep(60)

        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(PY, "-c", program, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    pid = int(line)
    assert not gone(pid)
    proc.kill()
    await proc.wait()
    await wait_for(lambda: gone(pid), within=5, what="the pod process to die with LocalKube")
