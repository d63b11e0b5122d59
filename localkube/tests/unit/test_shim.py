"""The pod network shim (`localkube/node/shim/sitecustomize.py`), exercised in real Python processes.

The shim patches the `socket` module of the process that loads it, so each case runs a small program in a
subprocess whose environment is what the kubelet gives a pod. No LocalKube is needed: the DNS table is a file
written here.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localkube.node.network import SHIM_DIR

BLOCK = random.randrange(16, 251)
NET = f"127.{BLOCK}"
POD_IP = f"{NET}.0.7"
OTHER_POD_IP = f"{NET}.0.8"
WEB_IP = f"{NET}.128.1"
DB_IP = f"{NET}.128.2"
HEADLESS_IPS = [f"{NET}.0.20", f"{NET}.0.21"]


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "cluster-dns.json"
    path.write_text(json.dumps({"domain": "cluster.local", "names": {
        "web.default.svc.cluster.local": [WEB_IP],
        "db.other.svc.cluster.local": [DB_IP],
        "workers.default.svc.cluster.local": HEADLESS_IPS,
        "w-0.workers.default.svc.cluster.local": [HEADLESS_IPS[0]],
    }, "aliases": {"ext.default.svc.cluster.local": "localhost"}}))
    return path


def pod_env(hosts: Path | None, pod_ip: str | None = POD_IP, namespace: str = "default",
            name: str = "mypod") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALKUBE_")}
    env.update({"PYTHONPATH": str(SHIM_DIR), "LOCALKUBE_NAMESPACE": namespace, "LOCALKUBE_HOSTNAME": name,
                "LOCALKUBE_FQDN": name, "LOCALKUBE_CLUSTER_DOMAIN": "cluster.local", "LOCALKUBE_NETWORK": NET})
    if pod_ip:
        env["LOCALKUBE_POD_IP"] = pod_ip
    if hosts:
        env["LOCALKUBE_HOSTS"] = str(hosts)
    return env


def run(code: str, env: dict[str, str], timeout: float = 30) -> object:
    """Run `code` in a fresh interpreter; it prints one JSON value, which is returned."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    assert "shim disabled" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


RESOLVE = """
    import json, socket, sys
    out = {}
    for name in sys.argv[1:] if len(sys.argv) > 1 else NAMES:
        try:
            out[name] = sorted({ai[4][0] for ai in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)})
        except socket.gaierror:
            out[name] = None
    print(json.dumps(out))
"""


@pytest.mark.parametrize(("namespace", "name", "expected"), [
    ("default", "web", [WEB_IP]),
    ("default", "web.default", [WEB_IP]),
    ("default", "web.default.svc", [WEB_IP]),
    ("default", "web.default.svc.cluster.local", [WEB_IP]),
    ("default", "WEB.Default.svc.cluster.local.", [WEB_IP]),
    ("other", "web", None),  # short names resolve only in the pod's own namespace
    ("other", "web.default", [WEB_IP]),
    ("default", "db", None),
    ("other", "db", [DB_IP]),
    ("default", "workers", HEADLESS_IPS),
    ("default", "w-0.workers", [HEADLESS_IPS[0]]),
    ("default", "ext", ["127.0.0.1"]),  # ExternalName: an alias resolved by the host
    ("default", f"127-{BLOCK}-0-9.default.pod.cluster.local", [f"{NET}.0.9"]),
    ("default", "nothere.default.svc.cluster.local", None),
    ("default", "mypod", [POD_IP]),
    ("default", "localhost", ["127.0.0.1", "::1"]),
])
def test_cluster_names_resolve_through_the_search_path(hosts: Path, namespace: str, name: str,
                                                        expected: list[str] | None) -> None:
    got = run(f"NAMES = {[name]!r}\n" + textwrap.dedent(RESOLVE), pod_env(hosts, namespace=namespace))
    assert isinstance(got, dict)
    if name == "localhost":
        assert "127.0.0.1" in got[name]
    else:
        assert got[name] == expected


def test_other_resolver_entry_points(hosts: Path) -> None:
    got = run("""
        import json, socket, time
        started = time.monotonic()
        try:
            socket.gethostbyname("nothere.default.svc.cluster.local")
            missing = "resolved"
        except socket.gaierror:
            missing = time.monotonic() - started
        print(json.dumps({
            "byname": socket.gethostbyname("web"),
            "byname_ex": socket.gethostbyname_ex("web.default"),
            "hostname": socket.gethostname(),
            "fqdn": socket.getfqdn(),
            "fqdn_web": socket.getfqdn("web"),
            "byaddr": socket.gethostbyaddr(socket.gethostbyname(socket.gethostname())),
            "canon": socket.getaddrinfo("web", 80, flags=socket.AI_CANONNAME)[0][3],
            "v6": [ai[4][0] for ai in socket.getaddrinfo(
                "web", 80, socket.AF_INET6, socket.SOCK_STREAM, flags=socket.AI_V4MAPPED)],
            "missing": missing,
        }))
    """, pod_env(hosts))
    assert isinstance(got, dict)
    assert got["byname"] == WEB_IP
    assert got["byname_ex"] == ["web.default.svc.cluster.local", ["web.default"], [WEB_IP]]
    assert got["hostname"] == "mypod"
    assert got["fqdn"] == "mypod"
    assert got["fqdn_web"] == "web.default.svc.cluster.local"
    assert got["byaddr"] == ["mypod", [], [POD_IP]]
    assert got["canon"] == "web.default.svc.cluster.local"
    assert got["v6"] == [f"::ffff:{WEB_IP}"]
    assert isinstance(got["missing"], float) and got["missing"] < 0.5


def test_passive_resolution_and_wildcard_binds_give_the_pod_ip(hosts: Path) -> None:
    got = run("""
        import json, socket
        from tornado.netutil import bind_sockets
        passive = {}
        for host in (None, "", "0.0.0.0", "::"):
            passive[repr(host)] = sorted({(ai[0].name, ai[4][0]) for ai in socket.getaddrinfo(
                host, 8786, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)})
        tornado = [s.getsockname()[0] for s in bind_sockets(0, address=None)]
        v4 = socket.socket(); v4.bind(("0.0.0.0", 0)); v4.listen()
        v6 = socket.socket(socket.AF_INET6); v6.bind(("::", 0)); v6.listen()
        v6only = socket.socket(socket.AF_INET6)
        v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6only.bind(("", 0))
        empty = socket.socket(); empty.bind(("", 0))
        loop = socket.socket(); loop.bind(("127.0.0.1", 0))
        print(json.dumps({"passive": passive, "tornado": tornado, "v4": v4.getsockname()[0],
                          "v6": v6.getsockname()[0], "v6only": v6only.getsockname()[0],
                          "empty": empty.getsockname()[0], "loopback": loop.getsockname()[0]}))
    """, pod_env(hosts))
    assert isinstance(got, dict)
    for host, infos in got["passive"].items():
        assert infos == [["AF_INET", POD_IP]], host
    assert got["tornado"] == [POD_IP]
    assert got["v4"] == got["empty"] == POD_IP
    assert got["v6"] == got["v6only"] == f"::ffff:{POD_IP}"
    assert got["loopback"] == "127.0.0.1"  # localhost stays loopback


def test_two_pods_listen_on_the_same_port(hosts: Path) -> None:
    """Each program binds 0.0.0.0:PORT (v4) or [::]:PORT (v6); the test process reaches both by pod IP."""
    probe = socket.socket()
    probe.bind((POD_IP, 0))
    port = probe.getsockname()[1]
    probe.close()
    server = textwrap.dedent(f"""
        import socket, sys
        family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
        s = socket.socket(family)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", {port}))
        s.listen()
        print("ready", flush=True)
        conn, _ = s.accept()
        conn.sendall(socket.gethostname().encode())
        conn.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", server, family], env=pod_env(hosts, ip, name=name),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ip, name, family in ((POD_IP, "one", "4"), (OTHER_POD_IP, "two", "6"))]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        answers = {}
        for ip in (POD_IP, OTHER_POD_IP):
            with socket.create_connection((ip, port), timeout=10) as conn:
                answers[ip] = conn.recv(100).decode()
        assert answers == {POD_IP: "one", OTHER_POD_IP: "two"}
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


def test_own_address_detection_and_source_address(hosts: Path) -> None:
    """A UDP socket "connected" to a public address (how distributed's `get_ip()` finds its own address) names the
    pod IP, and peers see TCP connections come from it. (tests/localkube in dask_kube runs `get_ip()` itself.)"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(20)
    try:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import json, socket
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.connect(("8.8.8.8", 80))
            tcp = socket.create_connection(("127.0.0.1", {listener.getsockname()[1]}))
            print(json.dumps({{"udp": udp.getsockname()[0], "tcp": tcp.getsockname()[0]}}))
            tcp.close()
        """)], env=pod_env(hosts), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        conn, peer = listener.accept()
        conn.close()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        listener.close()
    got = json.loads(out)
    assert got == {"udp": POD_IP, "tcp": POD_IP}
    assert peer[0] == POD_IP


def test_table_changes_are_seen_by_a_running_process(hosts: Path) -> None:
    """The process re-reads the table when the file is replaced, and only then."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import socket, sys
        for line in sys.stdin:
            try:
                print(socket.gethostbyname(line.strip()), flush=True)
            except socket.gaierror:
                print("-", flush=True)
    """)], env=pod_env(hosts), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        def ask(name: str) -> str:
            proc.stdin.write(name + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return proc.stdout.readline().strip()  # type: ignore[union-attr]

        assert ask("fresh") == "-"
        table = json.loads(hosts.read_text())
        table["names"]["fresh.default.svc.cluster.local"] = [f"{NET}.128.9"]
        tmp = hosts.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, hosts)
        assert ask("fresh") == f"{NET}.128.9"
        assert ask("web") == WEB_IP
    finally:
        proc.kill()
        proc.communicate()


def test_without_the_environment_nothing_changes(hosts: Path) -> None:
    env = pod_env(None, None)
    got = run("""
        import json, socket
        print(json.dumps({"hostname": socket.gethostname(),
                          "passive": sorted({ai[4][0] for ai in socket.getaddrinfo(
                              None, 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)}),
                          "patched": socket.getaddrinfo.__module__}))
    """, env)
    assert got == {"hostname": socket.gethostname(), "passive": ["0.0.0.0"], "patched": "socket"}


def test_dns_only_for_host_network_pods(hosts: Path) -> None:
    """hostNetwork pods with ClusterFirstWithHostNet get cluster DNS but keep the host's addresses."""
    got = run("""
        import json, socket
        s = socket.socket(); s.bind(("0.0.0.0", 0))
        print(json.dumps([socket.gethostbyname("web"), s.getsockname()[0]]))
    """, pod_env(hosts, pod_ip=None))
    assert got == [WEB_IP, "0.0.0.0"]


def test_a_shadowed_sitecustomize_still_runs(hosts: Path, tmp_path: Path) -> None:
    other = tmp_path / "site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITECUSTOMIZE'] = 'ran'\n")
    env = pod_env(hosts)
    env["PYTHONPATH"] += os.pathsep + str(other)
    got = run("import json, os, socket\nprint(json.dumps([os.environ.get('OTHER_SITECUSTOMIZE'), "
              "socket.gethostbyname('web')]))", env)
    assert got == ["ran", WEB_IP]


def test_startup_cost_is_small(hosts: Path) -> None:
    """The shim runs in every pod process: its import stays a few milliseconds."""
    got = run("""
        import json, sys, time, importlib
        sys.modules.pop("sitecustomize", None)
        started = time.perf_counter()
        for _ in range(20):
            sys.modules.pop("sitecustomize", None)
            importlib.import_module("sitecustomize")
        print(json.dumps((time.perf_counter() - started) / 20))
    """, pod_env(hosts))
    assert isinstance(got, float) and got < 0.02
