"""LocalKube pod network shim: makes a process on loopback see the network a pod sees in a cluster.

Python imports `sitecustomize` at start-up; the kubelet puts this directory first on PYTHONPATH of pod processes.
Driven by environment variables, and a no-op without them:

- `LOCALKUBE_POD_IP`: wildcard binds (`0.0.0.0`, `""`, `::`) go to the pod IP, so two pods can both listen on
  8786; passive name resolution returns only the pod IP, because servers such as tornado bind every address
  resolution returns (IPv6 included); a UDP "connect" to the outside (how `distributed.utils.get_ip` finds its
  own address) reports the pod IP; TCP connections to loopback leave from the pod IP, so peers see who called.
- `LOCALKUBE_HOSTS`: the cluster DNS table (JSON, rewritten atomically by LocalKube, re-read when it changes).
  Names are looked up through the search path a pod's resolv.conf has (`NS.svc.DOMAIN svc.DOMAIN DOMAIN`,
  ndots 5), so `web`, `web.NS`, `web.NS.svc` and the full name all resolve, short names only in the pod's own
  namespace. A miss inside the cluster domain fails at once instead of asking the host's resolver.
- `LOCALKUBE_HOSTNAME`, `LOCALKUBE_FQDN`: what `gethostname()` and `getfqdn()` answer (the pod's name).

Only the standard library is imported here, and little of it, since every pod process pays for this at start-up.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex
_real_gethostbyaddr = socket.gethostbyaddr
_real_getfqdn = socket.getfqdn
_real_bind = socket.socket.bind
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex

_WILDCARDS_V4 = ("", "0.0.0.0")
_WILDCARDS_V6 = ("", "::", "::0", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0")
_NDOTS = 5


class _Table:
    """The DNS table file, parsed again only when its inode, size or mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self.names: dict[str, list[str]] = {}
        self.aliases: dict[str, str] = {}
        self.services: dict[str, list[list[object]]] = {}  # "clusterIP:port" -> [[endpoint IP, port], ...]

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        import json  # here, not at start-up: most processes never resolve a cluster name

        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        self.names = data.get("names") or {}
        self.aliases = data.get("aliases") or {}
        self.services = data.get("services") or {}
        self._stamp = stamp


class _Resolver:
    """Cluster names to addresses, with the search path and pod records of cluster DNS."""

    def __init__(self, table: _Table | None, namespace: str, domain: str, hostname: str, fqdn: str,
                 pod_ip: str | None) -> None:
        self.table = table
        self.domain = domain
        self.search = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
        self.own = {n.lower() for n in (hostname, fqdn) if n} if pod_ip else set()
        self.pod_ip = pod_ip
        self.fqdn = fqdn or hostname

    def lookup(self, host: object) -> tuple[str, list[str]] | None:
        """(canonical name, IPv4 addresses) for a cluster or pod name; None when the host resolver decides.

        Raises `socket.gaierror` for a name inside the cluster domain that does not exist.
        """
        if not isinstance(host, str) or not host or ":" in host or host.replace(".", "").isdigit():
            return None  # IP literals
        name = host.lower()
        if name in self.own and self.pod_ip:
            return self.fqdn, [self.pod_ip]
        if name == "localhost" or name.endswith(".localhost"):
            return None
        if name.endswith("."):
            candidates = [name[:-1]]
        elif name.count(".") < _NDOTS:
            candidates = [f"{name}.{suffix}" for suffix in self.search] + [name]
        else:
            candidates = [name] + [f"{name}.{suffix}" for suffix in self.search]
        if self.table is not None:
            self.table.refresh()
            for candidate in candidates:
                found = self._record(candidate, 0)
                if found is not None:
                    return found
        if name.rstrip(".") == self.domain or name.rstrip(".").endswith("." + self.domain):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return None

    def _record(self, name: str, depth: int) -> tuple[str, list[str]] | None:
        table = self.table
        assert table is not None
        ips = table.names.get(name)
        if ips:
            return name, list(ips)
        target = table.aliases.get(name)
        if target is not None and depth < 8:
            inner = self._record(target, depth + 1)
            if inner is not None:
                return inner
            try:
                return target, [_real_gethostbyname(target)]
            except OSError:
                return None
        suffix = f".pod.{self.domain}"
        if name.endswith(suffix):  # 127-40-0-5.NS.pod.cluster.local, as CoreDNS answers
            label = name[: -len(suffix)].split(".")[0]
            parts = label.split("-")
            if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
                return name, [".".join(parts)]
        return None


def _install(env: dict[str, str]) -> bool:
    pod_ip = env.get("LOCALKUBE_POD_IP") or None
    hosts = env.get("LOCALKUBE_HOSTS") or None
    if not pod_ip and not hosts:
        return False
    hostname = env.get("LOCALKUBE_HOSTNAME") or ""
    fqdn = env.get("LOCALKUBE_FQDN") or hostname
    resolver = _Resolver(_Table(hosts) if hosts else None, env.get("LOCALKUBE_NAMESPACE") or "default",
                         (env.get("LOCALKUBE_CLUSTER_DOMAIN") or "cluster.local").lower(), hostname, fqdn, pod_ip)
    network = env.get("LOCALKUBE_NETWORK") or ""

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if pod_ip and flags & socket.AI_PASSIVE and (host is None or host in _WILDCARDS_V4 + _WILDCARDS_V6):
            if family == socket.AF_INET6:
                return _real_getaddrinfo("::ffff:" + pod_ip, port, family, type, proto,
                                         (flags & ~socket.AI_PASSIVE) | socket.AI_NUMERICHOST)
            return _real_getaddrinfo(pod_ip, port, socket.AF_INET, type, proto,
                                     (flags & ~socket.AI_PASSIVE) | socket.AI_NUMERICHOST)
        found = resolver.lookup(host.decode() if isinstance(host, bytes) else host)
        if found is None:
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        canonical, ips = found
        numeric = (flags & ~socket.AI_CANONNAME) | socket.AI_NUMERICHOST
        out = []
        for ip in ips:
            if family in (0, socket.AF_INET):
                out += _real_getaddrinfo(ip, port, socket.AF_INET, type, proto, numeric)
            elif family == socket.AF_INET6 and flags & socket.AI_V4MAPPED:
                out += _real_getaddrinfo("::ffff:" + ip, port, family, type, proto, numeric)
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if flags & socket.AI_CANONNAME:
            first = out[0]
            out[0] = (first[0], first[1], first[2], canonical, first[4])
        return out

    def gethostbyname(hostname):
        found = resolver.lookup(hostname)
        return found[1][0] if found else _real_gethostbyname(hostname)

    def gethostbyname_ex(hostname):
        found = resolver.lookup(hostname)
        if found is None:
            return _real_gethostbyname_ex(hostname)
        aliases = [hostname] if hostname.lower().rstrip(".") != found[0] else []
        return found[0], aliases, found[1]

    def gethostbyaddr(ip_address):
        if pod_ip and ip_address == pod_ip:
            return resolver.fqdn, [hostname] if hostname != resolver.fqdn else [], [pod_ip]
        if network and isinstance(ip_address, str) and ip_address.startswith(network + "."):
            # Our own addresses have no PTR records anywhere: do not wait for the host's DNS to say so.
            raise socket.herror(1, "Unknown host")
        return _real_gethostbyaddr(ip_address)

    def getfqdn(name=""):
        if not name or name in ("0.0.0.0", "::") or name.lower() in resolver.own or name == pod_ip:
            return resolver.fqdn
        try:
            found = resolver.lookup(name)
        except OSError:
            return name
        return found[0] if found else _real_getfqdn(name)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.getfqdn = getfqdn
    if hostname:
        socket.gethostname = lambda: hostname
    if pod_ip:
        _patch_socket(pod_ip, resolver)
    return True


def _patch_socket(pod_ip: str, resolver: _Resolver) -> None:
    mapped = "::ffff:" + pod_ip

    def bind(self, address):
        if isinstance(address, tuple) and address:
            if self.family == socket.AF_INET and address[0] in _WILDCARDS_V4:
                address = (pod_ip, *address[1:])
            elif self.family == socket.AF_INET6 and address[0] in _WILDCARDS_V6:
                # A dual-stack wildcard becomes the pod IP as an IPv4-mapped address, which needs V6ONLY off.
                try:
                    self.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                except OSError:
                    pass
                address = (mapped, *address[1:])
        return _real_bind(self, address)

    def prepare(self, address):
        """Bind the source before connecting; returns the address to really connect to."""
        if not isinstance(address, tuple) or self.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        host = address[0]
        if not isinstance(host, str):
            return address
        if self.family == socket.AF_INET:  # connect() resolves names in C, past our getaddrinfo
            found = resolver.lookup(host)
            if found is not None:
                host = found[1][0]
                address = (host, *address[1:])
            if self.type == socket.SOCK_STREAM and resolver.table is not None:
                # What kube-proxy does with DNAT: a Service's address becomes a ready endpoint's, chosen per
                # connection; with none ready, the connection is refused (as iptables REJECT makes it).
                resolver.table.refresh()
                endpoints = resolver.table.services.get(f"{host}:{address[1]}")
                if endpoints is not None:
                    if not endpoints:
                        raise ConnectionRefusedError(errno.ECONNREFUSED, "no ready endpoint behind this Service")
                    target = random.choice(endpoints)
                    host = str(target[0])
                    address = (host, int(target[1]))
        if self.family == socket.AF_INET:
            loopback = host.startswith("127.") or host == "localhost"
        elif host in ("::1", "localhost"):
            return address  # IPv6 loopback: the pod's v4-mapped address cannot reach it
        else:
            loopback = host.startswith("::ffff:127.")
        try:
            local = self.getsockname()
        except OSError:
            return address
        if local[1] != 0 or local[0] not in ("0.0.0.0", "::"):
            return address  # already bound by the program
        udp = self.type == socket.SOCK_DGRAM
        if not loopback and not udp:
            return address  # a TCP connection to the outside keeps the host's source address
        own = pod_ip if self.family == socket.AF_INET else mapped
        try:
            if self.family == socket.AF_INET6:
                self.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _real_bind(self, (own, 0))
        except OSError:
            return address
        if udp and not loopback:
            # Nothing outside loopback is reachable from a pod address: this "connect" only ever served to ask
            # the kernel which source address we have (distributed.utils.get_ip), so answer with our own.
            return (own, address[1], *address[2:])
        return address

    def connect(self, address):
        return _real_connect(self, prepare(self, address))

    def connect_ex(self, address):
        try:
            address = prepare(self, address)
        except ConnectionRefusedError:
            return errno.ECONNREFUSED
        return _real_connect_ex(self, address)

    socket.socket.bind = bind
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


def _chain() -> None:
    """Run the sitecustomize this one shadows, if the environment has one further down the path."""
    import importlib.machinery

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


try:
    _install(dict(os.environ))
except Exception as _err:  # a broken shim must not stop the pod's program; say why once
    print(f"localkube network shim disabled: {_err!r}", file=sys.stderr)
_chain()
