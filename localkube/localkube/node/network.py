"""Cluster networking on loopback: pod and Service addresses, node ports, load balancers and cluster DNS.

Linux routes all of 127.0.0.0/8 to `lo`, so every pod can own a real address there and bind it without root.
Each LocalKube takes one /16 of that range, `127.B.0.0/16`, chosen at random and locked for as long as it runs,
so that two LocalKubes on one machine never share an address:

    127.B.0.1   - 127.B.127.254   pod IPs
    127.B.128.1 - 127.B.191.254   Service ClusterIPs
    127.B.192.1 - 127.B.255.254   LoadBalancer ingress IPs
    127.0.0.1                     the node (status.hostIP, NodePorts)

Pod processes get `shim/sitecustomize.py` first on PYTHONPATH: it maps wildcard binds to the pod IP and resolves
cluster names from a JSON table this module rewrites whenever Services or their endpoints change. Processes
outside pods get no shim and see no cluster DNS, like a laptop outside a cluster; they come in through NodePorts,
LoadBalancer addresses or port-forward. The design record is docs/localkube-networking.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError, invalid
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.endpoints import ENDPOINTS_KEY, POD_KEY, SERVICE_KEY, EndpointsController
from localkube.node.proxies import ProxySet, Route

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T", bound=Hashable)

NODE_IP = "127.0.0.1"
NODE_PORT_RANGE = range(30000, 32768)
SHIM_DIR = Path(__file__).parent / "shim"
HOSTS_FILE = "cluster-dns.json"
STATE_FILE = "network.json"
BLOCKS = range(16, 251)


class PoolExhausted(Exception):
    pass


class Pool(Generic[T]):
    """Values handed out round-robin from a cursor, so that a released value is not reused at once.

    Quick reuse is what makes stale DNS answers and lingering connections reach the wrong pod or Service.
    """

    def __init__(self, values: Sequence[T], start: int = 0) -> None:
        self.values = values
        self.owners: dict[T, Hashable] = {}
        self._cursor = start % len(values) if values else 0

    def owner(self, value: T) -> Hashable | None:
        return self.owners.get(value)

    def claim(self, value: T, owner: Hashable) -> None:
        self.owners[value] = owner

    def release(self, value: T, owner: Hashable | None = None) -> None:
        if owner is None or self.owners.get(value) == owner:
            self.owners.pop(value, None)

    def next_free(self, taken: set[T] | frozenset[T] = frozenset()) -> T:
        """The next unowned value after the cursor (not claimed: the caller claims it once it is stored)."""
        for step in range(len(self.values)):
            value = self.values[(self._cursor + step) % len(self.values)]
            if value not in self.owners and value not in taken:
                self._cursor = (self._cursor + step + 1) % len(self.values)
                return value
        raise PoolExhausted()


def address_range(prefix: str, third_octets: range) -> list[str]:
    return [f"{prefix}.{c}.{d}" for c in third_octets for d in range(1, 255)]


class Network:
    """IPAM, Service admission, Endpoints, proxies and the DNS table of one LocalKube.

    The kubelet calls `allocate_pod_ip`, `release_pod_ip` and `pod_environment` (its `PodNetwork` protocol).
    """

    def __init__(self, core: ApiCore, state_dir: str | Path, *, block: int | None = None,
                 cluster_domain: str = "cluster.local") -> None:
        self.core = core
        self.state_dir = Path(state_dir)
        self.cluster_domain = cluster_domain
        self.hosts_path = self.state_dir / HOSTS_FILE
        self._requested_block = block
        self.block = -1
        self._lock: IO[str] | None = None
        self.endpoints = EndpointsController(core)
        self.proxies = ProxySet(self._backends)
        self._pod_ips: Pool[str] = Pool(())  # filled once start() has chosen the block
        self._cluster_ips: Pool[str] = Pool(())
        self._lb_ips: Pool[str] = Pool(())
        self._node_ports: Pool[int] = Pool(NODE_PORT_RANGE, random.randrange(len(NODE_PORT_RANGE)))
        self._cluster_ip_values: frozenset[str] = frozenset()
        self._pod_ip_of: dict[str, str] = {}  # pod uid -> IP
        self._lb_ip_of: dict[tuple[str, str], str] = {}  # Service -> ingress IP
        self._service_claims: dict[tuple[str, str], tuple[str | None, frozenset[int]]] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hosts_written: str | None = None
        self._started = False

    # -- address plan --------------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"127.{self.block}"

    @property
    def pod_cidr(self) -> str:
        return f"{self.prefix}.0.0/17"

    @property
    def service_cidr(self) -> str:
        return f"{self.prefix}.128.0/18"

    @property
    def load_balancer_cidr(self) -> str:
        return f"{self.prefix}.192.0/18"

    def _choose_block(self) -> None:
        """Take the configured, saved or a random free /16, and hold a lock on it while running."""
        state = self.state_dir / STATE_FILE
        saved = None
        if state.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                saved = int(json.loads(state.read_text())["block"])
        if self._requested_block is not None:
            if self._requested_block not in BLOCKS:
                raise ValueError(f"network block must be in [{BLOCKS.start}, {BLOCKS.stop - 1}]")
            if not self._try_lock(self._requested_block):
                raise RuntimeError(f"127.{self._requested_block}.0.0/16 is in use by another LocalKube")
            self.block = self._requested_block
        elif saved is not None and saved in BLOCKS and self._try_lock(saved):
            self.block = saved
        else:
            for candidate in random.sample(list(BLOCKS), len(BLOCKS)):
                if self._try_lock(candidate):
                    self.block = candidate
                    break
            else:
                raise RuntimeError("every 127.B.0.0/16 block is in use by other LocalKubes")
        state.write_text(json.dumps({"block": self.block}))

    def _try_lock(self, block: int) -> bool:
        path = Path(tempfile.gettempdir()) / f"localkube-net-127.{block}.lock"
        handle = open(path, "a")  # noqa: SIM115 -- held open for the lifetime of the network
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._choose_block()
        self._pod_ips = Pool(address_range(self.prefix, range(0, 128)))
        self._cluster_ips = Pool(address_range(self.prefix, range(128, 192)))
        self._lb_ips = Pool(address_range(self.prefix, range(192, 256)))
        self._cluster_ip_values = frozenset(self._cluster_ips.values)
        lb_values = frozenset(self._lb_ips.values)
        for svc in self.core.store.list(SERVICE_KEY):
            self._claim_service(svc)
            lb_ip = _ingress_ip(svc)
            if lb_ip in lb_values and self._lb_ips.owner(lb_ip) is None:
                self._lb_ips.claim(lb_ip, _ident(svc))
                self._lb_ip_of[_ident(svc)] = lb_ip
        pod_values = frozenset(self._pod_ips.values)
        for pod in self.core.store.list(POD_KEY):
            ip = (pod.get("status") or {}).get("podIP")
            if ip in pod_values and self._pod_ips.owner(ip) is None:
                self._pod_ips.claim(ip, pod["metadata"]["uid"])
                self._pod_ip_of[pod["metadata"]["uid"]] = ip
        self.core.admission.setdefault(SERVICE_KEY, []).append(self._admit_service)
        self.core.store.add_listener(self._on_event)
        self.endpoints.start()
        self.endpoints.kick()
        self._dirty.set()
        self._task = asyncio.create_task(self._run(), name="localkube-network")
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        hooks = self.core.admission.get(SERVICE_KEY, [])
        if self._admit_service in hooks:
            hooks.remove(self._admit_service)
        self.core.store.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.endpoints.stop()
        await self.proxies.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- PodNetwork protocol (the kubelet) -----------------------------------------------------------------

    def allocate_pod_ip(self, pod: Obj) -> str:
        """A loopback IP of the pod range, stable for the pod's uid until released."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            return NODE_IP
        uid = pod["metadata"]["uid"]
        ip = self._pod_ip_of.get(uid)
        if ip is not None:
            return ip
        ip = self._pod_ips.next_free()
        self._pod_ips.claim(ip, uid)
        self._pod_ip_of[uid] = ip
        return ip

    def release_pod_ip(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        ip = self._pod_ip_of.pop(uid, None)
        if ip is not None:
            self._pod_ips.release(ip, uid)

    def pod_environment(self, pod: Obj, ip: str) -> dict[str, str]:
        """What the pod's processes need to see the cluster network: the shim on PYTHONPATH and its inputs."""
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        namespace = meta.get("namespace") or "default"
        hostname = (spec.get("hostname") or meta["name"])[:63]
        subdomain = spec.get("subdomain")
        fqdn = f"{hostname}.{subdomain}.{namespace}.svc.{self.cluster_domain}" if subdomain else hostname
        env = {
            "PYTHONPATH": str(SHIM_DIR),  # the kubelet prepends it to the container's own PYTHONPATH
            "HOSTNAME": hostname,
            "LOCALKUBE_NAMESPACE": namespace,
            "LOCALKUBE_HOSTNAME": hostname,
            "LOCALKUBE_FQDN": fqdn,
            "LOCALKUBE_CLUSTER_DOMAIN": self.cluster_domain,
            "LOCALKUBE_NETWORK": self.prefix,
        }
        host_network = bool(spec.get("hostNetwork"))
        dns_policy = spec.get("dnsPolicy") or "ClusterFirst"
        if not host_network:
            env["LOCALKUBE_POD_IP"] = ip
        if dns_policy == "ClusterFirstWithHostNet" or (dns_policy == "ClusterFirst" and not host_network):
            env["LOCALKUBE_HOSTS"] = str(self.hosts_path)
        return env

    # -- Service admission: ClusterIPs and node ports ------------------------------------------------------

    def _admit_service(self, obj: Obj, old: Obj | None) -> None:
        """Allocate `spec.clusterIP(s)` and node ports inside the write, as the API server's REST layer does."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        old_spec = (old or {}).get("spec") or {}
        owner = _ident(obj)
        name = obj["metadata"].get("name") or ""
        causes: list[dict[str, Any]] = []
        self._admit_cluster_ip(spec, old_spec, owner, causes)
        self._admit_node_ports(spec, old_spec, owner, causes)
        if causes:
            raise invalid("Service", name, causes)

    def _admit_cluster_ip(self, spec: Obj, old_spec: Obj, owner: tuple[str, str], causes: list[Obj]) -> None:
        if spec.get("type") == "ExternalName":  # a DNS alias: its ClusterIP (if it had one) goes
            if spec.get("clusterIP") in (None, "", old_spec.get("clusterIP")):
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            return
        ips = spec.get("clusterIPs") if isinstance(spec.get("clusterIPs"), list) else []
        requested = spec.get("clusterIP") or (ips[0] if ips else None)
        previous = old_spec.get("clusterIP") if old_spec.get("type") != "ExternalName" else None
        if not requested and previous:
            requested = previous  # an update that omits the IP keeps it, as `kubectl replace` relies on
        if previous and requested != previous:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
                           "message": f'Invalid value: []string{{"{requested}"}}: may not change once set'})
            return
        if requested == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return
        if requested:
            if not isinstance(requested, str) or requested not in self._cluster_ip_values:
                causes.append({"reason": "FieldValueInvalid", "field": "spec.clusterIPs",
                               "message": f'Invalid value: []string{{"{requested}"}}: failed to allocate IP '
                                          f"{requested}: the provided IP ({requested}) is not in the valid range. "
                                          f"The range of valid IPs is {self.service_cidr}"})
                return
            holder = self._cluster_ips.owner(requested)
            if holder is not None and holder != owner:
                causes.append({"reason": "FieldValueInvalid", "field": "spec.clusterIPs",
                               "message": f'Invalid value: []string{{"{requested}"}}: failed to allocate IP '
                                          f"{requested}: provided IP is already allocated"})
                return
        else:
            try:
                requested = self._cluster_ips.next_free()
            except PoolExhausted:
                causes.append({"reason": "FieldValueInvalid", "field": "spec.clusterIPs",
                               "message": "Invalid value: []string{}: failed to allocate IP: range is full"})
                return
        spec["clusterIP"], spec["clusterIPs"] = requested, [requested]

    def _admit_node_ports(self, spec: Obj, old_spec: Obj, owner: tuple[str, str], causes: list[Obj]) -> None:
        svc_type = spec.get("type") or "ClusterIP"
        ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or () if isinstance(p, dict) and p.get("nodePort")}
        wanted = svc_type == "NodePort" or (svc_type == "LoadBalancer" and spec.setdefault(
            "allocateLoadBalancerNodePorts", True))
        if not wanted:
            for port in ports:
                # Node ports the server allocated go when the type no longer needs them; explicit ones stay
                # for validation to refuse.
                if port.get("nodePort") and port["nodePort"] == old_ports.get((port.get("port"),
                                                                                port.get("protocol", "TCP"))):
                    del port["nodePort"]
            if svc_type != "LoadBalancer":
                spec.pop("healthCheckNodePort", None)
            return
        used_here: set[int] = set()
        for i, port in enumerate(spec.get("ports") or ()):
            if not isinstance(port, dict):
                continue
            number = port.get("nodePort") or old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if number:
                error = self._check_node_port(number, owner)
                if error:
                    causes.append({"reason": "FieldValueInvalid", "field": f"spec.ports[{i}].nodePort",
                                   "message": f"Invalid value: {number}: {error}"})
                    continue
            else:
                try:
                    number = self._node_ports.next_free(used_here)
                except PoolExhausted:
                    causes.append({"reason": "FieldValueInvalid", "field": f"spec.ports[{i}].nodePort",
                                   "message": "Invalid value: 0: range is full"})
                    continue
            port["nodePort"] = number
            used_here.add(number)
        local = svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
        if local and not spec.get("healthCheckNodePort"):
            health = old_spec.get("healthCheckNodePort")
            with contextlib.suppress(PoolExhausted):
                spec["healthCheckNodePort"] = health or self._node_ports.next_free(used_here)
        elif not local:
            spec.pop("healthCheckNodePort", None)

    def _check_node_port(self, number: Any, owner: tuple[str, str]) -> str | None:
        if not isinstance(number, int) or isinstance(number, bool):
            return None  # validation reports the type
        if number not in NODE_PORT_RANGE:
            return (f"provided port is not in the valid range. The range of valid ports is "
                    f"{NODE_PORT_RANGE.start}-{NODE_PORT_RANGE.stop - 1}")
        holder = self._node_ports.owner(number)
        if holder is not None and holder != owner:
            return "provided port is already allocated"
        return None

    def _claim_service(self, svc: Obj) -> None:
        """Record what a stored Service holds; what it no longer holds goes back to the pools."""
        owner = _ident(svc)
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP") if spec.get("clusterIP") not in (None, "", "None") else None
        ports = {p["nodePort"] for p in spec.get("ports") or () if isinstance(p, dict)
                 and isinstance(p.get("nodePort"), int)}
        if isinstance(spec.get("healthCheckNodePort"), int):
            ports.add(spec["healthCheckNodePort"])
        self._release_service(owner, keep=(ip, frozenset(ports)))
        if ip:
            self._cluster_ips.claim(ip, owner)
        for port in ports:
            self._node_ports.claim(port, owner)
        self._service_claims[owner] = (ip, frozenset(ports))

    def _release_service(self, owner: tuple[str, str], keep: tuple[str | None, frozenset[int]] = (None,
                         frozenset())) -> None:
        ip, ports = self._service_claims.pop(owner, (None, frozenset()))
        if ip and ip != keep[0]:
            self._cluster_ips.release(ip, owner)
        for port in ports - keep[1]:
            self._node_ports.release(port, owner)

    # -- events and the reconcile loop ---------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Keep the pools exact at write time; proxies, DNS and load balancers follow in the task."""
        if event.key == SERVICE_KEY:
            if event.type == DELETED:
                self._release_service(_ident(event.obj))
                lb_ip = self._lb_ip_of.pop(_ident(event.obj), None)
                if lb_ip:
                    self._lb_ips.release(lb_ip)
            else:
                self._claim_service(event.obj)
            self._dirty.set()
        elif event.key == ENDPOINTS_KEY:
            self._dirty.set()
        elif event.key == POD_KEY and event.type == DELETED:
            self.release_pod_ip(event.obj)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self._sync_load_balancers()
                self._write_hosts()
                await self.proxies.apply(self._routes())
            except Exception:
                log.exception("network reconcile failed")

    def _sync_load_balancers(self) -> None:
        """Give each LoadBalancer Service an ingress IP (status subresource); take it back from the others."""
        kind = self.core.kind_of(SERVICE_KEY)
        for svc in self.core.store.list(SERVICE_KEY):
            owner = _ident(svc)
            is_lb = (svc.get("spec") or {}).get("type") == "LoadBalancer"
            current = _ingress_ip(svc)
            held = self._lb_ip_of.get(owner)
            if is_lb:
                if held is None:
                    try:
                        held = self._lb_ips.next_free()
                    except PoolExhausted:
                        log.warning("no load balancer IP left for %s/%s", *owner)
                        continue
                    self._lb_ips.claim(held, owner)
                    self._lb_ip_of[owner] = held
                if current == held:
                    continue
                status: Obj = {"loadBalancer": {"ingress": [{"ip": held, "ipMode": "VIP"}]}}
            else:
                if held:
                    self._lb_ips.release(held, owner)
                    del self._lb_ip_of[owner]
                if not current:
                    continue
                status = {"loadBalancer": {}}

            def set_status(obj: Obj, status: Obj = status) -> None:
                obj.setdefault("status", {}).update(status)

            try:
                self.core.mutate(kind, owner[0], owner[1], set_status, subresource="status",
                                 manager="cloud-controller-manager")
            except ApiError as err:
                log.debug("load balancer status of %s/%s: %s", *owner, err.message)

    def _routes(self) -> dict[tuple[str, int], Route]:
        """Every address a proxy should listen on, for Service ports that have a ready endpoint."""
        routes: dict[tuple[str, int], Route] = {}
        for svc in self.core.store.list(SERVICE_KEY):
            spec = svc.get("spec") or {}
            cluster_ip = spec.get("clusterIP")
            if spec.get("type") == "ExternalName" or cluster_ip in (None, "", "None"):
                continue
            ingress = _ingress_ip(svc) if spec.get("type") == "LoadBalancer" else None
            for port in spec.get("ports") or ():
                if not isinstance(port, dict) or port.get("protocol", "TCP") != "TCP":
                    continue  # UDP and SCTP are not forwarded (see the design record)
                route = Route(svc["metadata"]["namespace"], svc["metadata"]["name"], port.get("name") or "",
                              spec.get("sessionAffinity") == "ClientIP")
                if not self._backends(route):
                    continue
                number = port.get("port")
                if isinstance(number, int):
                    routes[(cluster_ip, number)] = route
                    if ingress:
                        routes[(ingress, number)] = route
                if isinstance(port.get("nodePort"), int):
                    routes[(NODE_IP, port["nodePort"])] = route
        return routes

    def _backends(self, route: Route) -> list[tuple[str, int]]:
        """Ready endpoint addresses of a Service port, read from its Endpoints as kube-proxy does."""
        eps = self.core.store.get(ENDPOINTS_KEY, route.namespace, route.service)
        out: list[tuple[str, int]] = []
        for subset in (eps or {}).get("subsets") or ():
            for port in subset.get("ports") or ():
                if (port.get("name") or "") != route.port_name or port.get("protocol", "TCP") != "TCP":
                    continue
                out += [(addr["ip"], port["port"]) for addr in subset.get("addresses") or () if addr.get("ip")]
        return out

    # -- cluster DNS ---------------------------------------------------------------------------------------

    def dns_table(self) -> Obj:
        """What the shim resolves: fully qualified names only; short names come from the pod's search path."""
        names: dict[str, list[str]] = {}
        aliases: dict[str, str] = {}
        for svc in self.core.store.list(SERVICE_KEY):
            meta, spec = svc["metadata"], svc.get("spec") or {}
            fqdn = f"{meta['name']}.{meta['namespace']}.svc.{self.cluster_domain}"
            if spec.get("type") == "ExternalName" and spec.get("externalName"):
                aliases[fqdn] = str(spec["externalName"]).rstrip(".").lower()
            elif spec.get("clusterIP") == "None":
                members: set[str] = set()
                eps = self.core.store.get(ENDPOINTS_KEY, meta["namespace"], meta["name"]) or {}
                for subset in eps.get("subsets") or ():
                    for addr in subset.get("addresses") or ():
                        members.add(addr["ip"])
                        if addr.get("hostname"):
                            names[f"{addr['hostname']}.{fqdn}"] = [addr["ip"]]
                if members:
                    names[fqdn] = sorted(members, key=_ip_key)
            elif spec.get("clusterIP"):
                names[fqdn] = [spec["clusterIP"]]
        return {"domain": self.cluster_domain, "names": names, "aliases": aliases, "services": self.service_routes()}

    def service_routes(self) -> dict[str, list[list[Any]]]:
        """`clusterIP:port` -> ready endpoints `[ip, targetPort]`, for the shim's connect-time rewrite (kube-proxy's
        DNAT): a pod connecting to a Service reaches an endpoint directly, or is refused when none is ready."""
        routes: dict[str, list[list[Any]]] = {}
        for svc in self.core.store.list(SERVICE_KEY):
            meta, spec = svc["metadata"], svc.get("spec") or {}
            ip = spec.get("clusterIP")
            if not ip or ip == "None" or spec.get("type") == "ExternalName":
                continue
            eps = self.core.store.get(ENDPOINTS_KEY, meta["namespace"], meta["name"]) or {}
            ports = [p for p in spec.get("ports") or () if (p.get("protocol") or "TCP") == "TCP"]
            for port in ports:
                targets: list[list[Any]] = []
                for subset in eps.get("subsets") or ():
                    by_name = {sp.get("name"): sp.get("port") for sp in subset.get("ports") or ()}
                    target = by_name.get(port.get("name")) if len(by_name) > 1 or port.get("name") in by_name \
                        else next(iter(by_name.values()), None)
                    if target is None:
                        continue
                    targets += [[addr["ip"], target] for addr in subset.get("addresses") or ()]
                routes[f"{ip}:{port['port']}"] = sorted(targets)
        return routes

    def _write_hosts(self) -> None:
        """Replace the table atomically (readers see the old or the new file, never half of one)."""
        text = json.dumps(self.dns_table(), sort_keys=True)
        if text == self._hosts_written and self.hosts_path.exists():
            return
        tmp = self.hosts_path.with_name(f".{HOSTS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.hosts_path)
        self._hosts_written = text


def _ident(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta.get("name") or ""


def _ingress_ip(svc: Obj) -> str | None:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0].get("ip") if ingress and isinstance(ingress[0], dict) else None


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ip.split(".")) if ip.count(".") == 3 else (999, 0, 0, 0)
