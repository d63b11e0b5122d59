"""Regenerate the protobuf fixtures from the real kubectl: `python -m tests.unit.localkube.protobuf_fixtures.capture`.

For each case, kubectl POSTs its protobuf body to a throwaway fake API server (saved as `<case>.bin`), and the
same command with `--dry-run=client -o json` prints the JSON kubectl would send (saved as `<case>.json`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from localkube.apiserver.protobuf import decode_envelope

HERE = Path(__file__).parent
KUBECTL = os.environ.get("KUBECTL", "kubectl")

CASES: dict[str, list[str]] = {
    "namespace": ["namespace", "ns1"],
    "configmap": ["configmap", "cm1", "--from-literal=a=1", "--from-literal=b=two"],
    "secret": ["secret", "generic", "s1", "--from-literal=pw=x"],
    "deployment_zero": ["deployment", "web", "--image=nginx:1.25", "--replicas=0", "--port=80"],
    "deployment": ["deployment", "web2", "--image=nginx", "--replicas=3"],
    "service_clusterip": ["service", "clusterip", "svc1", "--tcp=80:8080"],
    "service_nodeport": ["service", "nodeport", "svc2", "--tcp=80:8080", "--node-port=30080"],
    "job": ["job", "j1", "--image=busybox", "--", "echo", "hi"],
    "serviceaccount": ["serviceaccount", "sa1"],
    "role": ["role", "r1", "--verb=get", "--resource=pods"],
    "rolebinding": ["rolebinding", "rb1", "--role=r1", "--serviceaccount=default:sa1"],
    "clusterrole": ["clusterrole", "cr1", "--verb=list", "--resource=nodes"],
    "cronjob": ["cronjob", "cj1", "--image=busybox", "--schedule=*/1 * * * *", "--", "date"],
    "poddisruptionbudget": ["poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=1"],
    "priorityclass": ["priorityclass", "pc1", "--value=1000", "--description=high"],
    "clusterrolebinding": ["clusterrolebinding", "crb1", "--clusterrole=cr1", "--user=alice"],
}

# Legacy discovery: just enough for `create role` / `create clusterrole` to resolve their resources.
GROUPS = {"rbac.authorization.k8s.io": [], "apps": ["deployments"], "batch": ["jobs", "cronjobs"]}
CORE = ["pods", "nodes", "services", "configmaps", "secrets", "namespaces", "serviceaccounts"]
CLUSTER_SCOPED = {"nodes", "namespaces"}


def _resources(group_version: str, names: list[str]) -> dict:
    items = [
        {
            "name": n,
            "singularName": n[:-1],
            "namespaced": n not in CLUSTER_SCOPED,
            "kind": n[:-1].title(),
            "verbs": ["create", "get", "list"],
        }
        for n in names
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": items}


def _app(bodies: list[bytes]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if request.method == "POST":
            body = await request.read()
            bodies.append(body)
            api_version, kind, _ = decode_envelope(body)
            echo = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "captured"}}
            return web.json_response(echo, status=201)
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/api/v1":
            return web.json_response(_resources("v1", CORE))
        if path == "/apis":
            groups = [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in GROUPS
            ]
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        group = path.removeprefix("/apis/").removesuffix("/v1")
        if group in GROUPS:
            return web.json_response(_resources(f"{group}/v1", GROUPS[group]))
        return web.json_response({"kind": "Status", "status": "Failure", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _kubectl(env: dict[str, str], *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {err.decode()}")
    return out


async def capture(out_dir: Path = HERE) -> None:
    bodies: list[bytes] = []
    runner = web.AppRunner(_app(bodies))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = _kube_env(Path(tmp), port)
            for case, args in CASES.items():
                await _kubectl(env, "create", *args)
                (out_dir / f"{case}.bin").write_bytes(bodies.pop())
                dry = await _kubectl(env, "create", *_with_flags(args, "--dry-run=client", "-o=json"))
                (out_dir / f"{case}.json").write_text(json.dumps(json.loads(dry), indent=2) + "\n")
                print(f"captured {case}", file=sys.stderr)
    finally:
        await runner.cleanup()


def _with_flags(args: list[str], *flags: str) -> list[str]:
    """Insert flags before a `--` (after it they would become the container's command)."""
    cut = args.index("--") if "--" in args else len(args)
    return [*args[:cut], *flags, *args[cut:]]


def _kube_env(tmp: Path, port: int) -> dict[str, str]:
    config = tmp / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n"
        "users:\n- name: fake\n  user: {}\n"
    )
    return {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(tmp / "cache"), "HOME": str(tmp)}


if __name__ == "__main__":
    asyncio.run(capture())
