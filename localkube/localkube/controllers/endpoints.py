"""The Endpoints controller: for every Service with a selector, the addresses of the pods behind it.

As the real controller does, ready pods go to `addresses` and pods not ready yet to `notReadyAddresses`, with
the Service's target ports resolved per pod (a named `targetPort` is looked up in each pod's container ports),
and pods with the same resolved ports share a subset. Proxies and cluster DNS read these objects, so
"reachable through the Service" means the same thing here as on a cluster. Services without a selector are
left alone: their Endpoints belong to the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from localkube.apiserver.errors import ApiError
from localkube.apiserver.selectors import LabelSelector, label_selector_from_map
from localkube.apiserver.store import DELETED, Event
from localkube.controllers.base import Controller

Obj = dict[str, Any]
ServiceRef = tuple[str, str]

SERVICE_KEY = ("", "services")
POD_KEY = ("", "pods")
ENDPOINTS_KEY = ("", "endpoints")
HEADLESS_LABEL = "service.kubernetes.io/headless"


def pod_is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def resolve_target_port(service_port: Obj, pod: Obj) -> int | None:
    """The pod's port number for a Service port: the number itself, or the container port of that name."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return port.get("containerPort")
    return None


def _address(pod: Obj, service_name: str) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    address: Obj = {"ip": pod["status"]["podIP"]}
    if spec.get("hostname") and spec.get("subdomain") == service_name:
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"],
                            "uid": meta["uid"]}
    return address


def _ip_key(address: Obj) -> tuple[Any, ...]:
    parts = address["ip"].split(".")
    numeric = tuple(int(p) for p in parts) if len(parts) == 4 and all(p.isdigit() for p in parts) else ()
    return numeric, address["ip"], address.get("targetRef", {}).get("uid", "")


def compute_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The `subsets` of a Service's Endpoints for the pods its selector matches (pure, deterministic)."""
    spec = service.get("spec") or {}
    name = service["metadata"]["name"]
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    service_ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
    groups: dict[tuple[tuple[str, int, str, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("deletionTimestamp") and not publish_all:
            continue
        ports: list[tuple[str, int, str, str]] = []
        for sp in service_ports:
            number = resolve_target_port(sp, pod)
            if number is not None:
                ports.append((sp.get("name") or "", number, sp.get("protocol", "TCP"), sp.get("appProtocol") or ""))
        if not ports and not (headless and not service_ports):
            continue  # no port of this Service exists on the pod
        ready, not_ready = groups.setdefault(tuple(sorted(ports)), ([], []))
        (ready if publish_all or pod_is_ready(pod) else not_ready).append(_address(pod, name))
    subsets: list[Obj] = []
    for ports_key, (ready, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_ip_key)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_ip_key)
        if ports_key:
            subset["ports"] = [_port(*p) for p in ports_key]
        subsets.append(subset)
    return subsets


def _port(name: str, number: int, protocol: str, app_protocol: str) -> Obj:
    port: Obj = {"port": number, "protocol": protocol}
    if name:
        port["name"] = name
    if app_protocol:
        port["appProtocol"] = app_protocol
    return port


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = dict(service["metadata"].get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def _pod_signature(pod: Obj | None) -> Any:
    """The part of a pod Endpoints depend on, so that the many other pod updates cost nothing."""
    if pod is None:
        return None
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    return (meta.get("labels"), bool(meta.get("deletionTimestamp")), status.get("podIP"), status.get("phase"),
            pod_is_ready(pod), spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"),
            [c.get("ports") for c in spec.get("containers") or ()])


class EndpointsController(Controller):
    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self._dirty: set[ServiceRef] = set()
        self._resync = False
        self._selectors: dict[ServiceRef, tuple[str, LabelSelector | None]] = {}

    def wants(self, event: Event) -> bool:
        if event.key == POD_KEY:
            return event.type == DELETED or _pod_signature(event.obj) != _pod_signature(event.old)
        return event.key in (SERVICE_KEY, ENDPOINTS_KEY)

    def handle(self, event: Event | None) -> None:
        if event is None:
            self._resync = True
        elif event.key == POD_KEY:
            for pod in (event.obj, event.old):
                if pod is not None:
                    self._dirty.update(self._services_selecting(pod))
        else:
            self._dirty.add((event.namespace, event.obj["metadata"]["name"]))
        if not self._queue.empty():
            return  # coalesce a burst of events into one pass per Service
        if self._resync:
            self._resync = False
            self._dirty.update((s["metadata"]["namespace"], s["metadata"]["name"])
                               for s in self.core.store.list(SERVICE_KEY))
        while self._dirty:
            ref = self._dirty.pop()
            try:
                self.sync(*ref)
            except ApiError:
                continue  # a lost race: the write that beat us brings its own event

    def _selector(self, service: Obj) -> LabelSelector | None:
        ref = (service["metadata"]["namespace"], service["metadata"]["name"])
        rv = service["metadata"].get("resourceVersion", "")
        cached = self._selectors.get(ref)
        if cached is None or cached[0] != rv:
            raw = (service.get("spec") or {}).get("selector")
            cached = (rv, label_selector_from_map(raw) if raw else None)
            self._selectors[ref] = cached
        return cached[1]

    def _services_selecting(self, pod: Obj) -> list[ServiceRef]:
        namespace = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        out = []
        for svc in self.core.store.list(SERVICE_KEY, namespace):
            selector = self._selector(svc)
            if selector is not None and selector.matches(labels):
                out.append((namespace, svc["metadata"]["name"]))
        return out

    def sync(self, namespace: str, name: str) -> None:
        """Bring one Service's Endpoints up to date; write only when something changed."""
        store = self.core.store
        kind = self.core.kind_of(ENDPOINTS_KEY)
        service = store.get(SERVICE_KEY, namespace, name)
        current = store.get(ENDPOINTS_KEY, namespace, name)
        if service is None or service["metadata"].get("deletionTimestamp"):
            self._selectors.pop((namespace, name), None)
            if current is not None and service is None:
                self.core.delete(kind, namespace, name)
            return
        selector = self._selector(service)
        if selector is None:
            return
        pods = [p for p in store.list(POD_KEY, namespace) if selector.matches(p["metadata"].get("labels") or {})]
        subsets = compute_subsets(service, pods)
        labels = endpoints_labels(service)
        if current is None:
            body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                         "metadata": {"name": name, "namespace": namespace}}
            if labels:
                body["metadata"]["labels"] = labels
            if subsets:
                body["subsets"] = subsets
            self.core.create(kind, namespace, body, manager="kube-controller-manager")
            return
        if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
            return

        def update(obj: Obj) -> None:
            obj["metadata"]["labels"] = labels
            if subsets:
                obj["subsets"] = subsets
            else:
                obj.pop("subsets", None)

        self.core.mutate(kind, namespace, name, update, manager="kube-controller-manager")
