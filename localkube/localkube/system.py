"""What a small cluster holds before anyone uses it, created at start and never duplicated.

- `default/kubernetes`: the API server's Service (port 443 named https, the first ClusterIP of the range) and its
  Endpoints, reconciled to the HTTPS listener at every start, as kube-apiserver's bootstrap controller does.
- kube-system's DNS as kubeadm installs it: the `coredns` ConfigMap, ServiceAccount and Deployment (2 replicas,
  `k8s-app=kube-dns`) and the `kube-dns` Service (the tenth ClusterIP). Its pods are simulated (Running and Ready
  without a process): LocalKube resolves cluster names itself (node/network.py), so nothing would answer there.

Objects restored from a state directory are kept as they are (a user may have scaled or edited them); only what
is missing is created.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError
from localkube.controllers.nodes import SIMULATE_ANNOTATION

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SERVICE_KEY = ("", "services")
ENDPOINTS_KEY = ("", "endpoints")
API_SERVER_IP = "127.0.0.1"
DNS_LABELS = {"k8s-app": "kube-dns"}
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


def ensure(core: ApiCore, *, api_port: int, service_prefix: str) -> None:
    """Create what is missing; point the `kubernetes` Service and Endpoints at `api_port`.

    Needs the network started: it allocates the Services' ClusterIPs, of which these take the first and the tenth
    of the range when free, as a real cluster's do.
    """
    try:
        _ensure_api_service(core, api_port, f"{service_prefix}.128.1")
        for key, obj in dns_objects(f"{service_prefix}.128.10"):
            meta = obj["metadata"]
            if core.store.get(key, meta.get("namespace", ""), meta["name"]) is None:
                if key == SERVICE_KEY and not _ip_free(core, obj["spec"]["clusterIP"]):
                    del obj["spec"]["clusterIP"]
                core.create(core.kind_of(key), meta.get("namespace", ""), obj)
    except ApiError as err:  # e.g. a namespace still being deleted from a saved state: start without them
        log.warning("could not create the cluster's system objects: %s", err.message)


def _ip_free(core: ApiCore, ip: str) -> bool:
    return not any((s.get("spec") or {}).get("clusterIP") == ip for s in core.store.list(SERVICE_KEY))


def _ensure_api_service(core: ApiCore, port: int, cluster_ip: str) -> None:
    ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
    current = core.store.get(SERVICE_KEY, "default", "kubernetes")
    if current is None:
        spec: Obj = {"type": "ClusterIP", "sessionAffinity": "None", "ports": ports}
        if _ip_free(core, cluster_ip):
            spec["clusterIP"] = cluster_ip
        core.create(core.kind_of(SERVICE_KEY), "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": spec})
    elif (current.get("spec") or {}).get("ports") != ports:
        core.mutate(core.kind_of(SERVICE_KEY), "default", "kubernetes",
                    lambda svc: svc["spec"].__setitem__("ports", copy.deepcopy(ports)))
    subsets = [{"addresses": [{"ip": API_SERVER_IP}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    endpoints = core.store.get(ENDPOINTS_KEY, "default", "kubernetes")
    if endpoints is None:
        core.create(core.kind_of(ENDPOINTS_KEY), "default", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": subsets})
    elif endpoints.get("subsets") != subsets:
        core.mutate(core.kind_of(ENDPOINTS_KEY), "default", "kubernetes",
                    lambda eps: eps.__setitem__("subsets", copy.deepcopy(subsets)))


def dns_objects(cluster_ip: str) -> list[tuple[tuple[str, str], Obj]]:
    """kubeadm's CoreDNS add-on, with its pods simulated."""
    meta = {"namespace": "kube-system"}
    container = {
        "name": "coredns",
        "image": COREDNS_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 60,
                          "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 5},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
    }
    pod_spec = {
        "priorityClassName": "system-cluster-critical",
        "serviceAccountName": "coredns",
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                "topologyKey": "kubernetes.io/hostname"}}]}},
        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [container],
        "dnsPolicy": "Default",
        "volumes": [{"name": "config-volume", "configMap": {
            "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
    }
    return [
        (("", "configmaps"), {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {**meta, "name": "coredns"}, "data": {"Corefile": COREFILE}}),
        (("", "serviceaccounts"), {"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {**meta, "name": "coredns"}}),
        (("apps", "deployments"), {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {**meta, "name": "coredns", "labels": dict(DNS_LABELS)},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "selector": {"matchLabels": dict(DNS_LABELS)},
                "template": {"metadata": {"labels": dict(DNS_LABELS),
                                          "annotations": {SIMULATE_ANNOTATION: "true"}},
                             "spec": pod_spec},
            },
        }),
        (SERVICE_KEY, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {**meta, "name": "kube-dns",
                         "labels": {**DNS_LABELS, "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "CoreDNS"},
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {"selector": dict(DNS_LABELS), "clusterIP": cluster_ip,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                               {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
        }),
    ]
