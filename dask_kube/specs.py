"""Pure builders of DaskCluster, DaskWorkerGroup, Pod and Service dicts, shared by the client and the operator.

No I/O and no configuration reads: callers resolve defaults (dask config, operator settings) and pass them in; the
one exception is the public helpers' image, which with `image=None` is `images.default_image()` (the image tagged for
this client's versions). Every function returns a new dict and never mutates its arguments.

Pods pass the `restricted` Pod Security Standard: the helpers write its securityContexts (`run_as_root=True` writes
root instead), and the operator's pod builders fill them into a spec that has none (pod_security.py).
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from . import images, naming, pod_security, status, worker_lifecycle
from .naming import Component

DEFAULT_WORKER_COMMAND = ("dask", "worker")
DEFAULT_SCHEDULER_COMMAND = ("dask", "scheduler")

Obj = dict[str, Any]
Env = Mapping[str, str] | Sequence[Mapping[str, Any]] | None


def to_yaml(data: Any) -> str:
    """A manifest (or several, in a list) as YAML a person can read: keys in their order, and a fragment shared
    by several places (a built manifest shares some) written in full each time rather than as a YAML alias."""
    return str(yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False))


def env_list(env: Env) -> list[dict[str, Any]]:
    """A dict becomes `[{"name", "value"}]`; a list of Kubernetes env entries passes through (copied)."""
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return [dict(e) for e in env]


def command_list(command: str | Sequence[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def tls_spec(enabled: bool = True, secret_name: str | None = None) -> Obj:
    """A DaskCluster's `spec.tls`: TLS on, with the operator's generated Secret or the named one."""
    spec: Obj = {"enabled": bool(enabled)}
    if secret_name:
        spec["secretName"] = secret_name
    return spec


def tls_secret_of(cluster: Mapping[str, Any]) -> str | None:
    """The Secret holding a TLS cluster's certificates (its `secretName`, else `{name}-tls`); None without TLS."""
    tls = (cluster.get("spec") or {}).get("tls") or {}
    if not tls.get("enabled"):
        return None
    return str(tls.get("secretName") or naming.tls_secret_name(cluster["metadata"]["name"]))


def tls_env(secret: str) -> list[Obj]:
    """The variables that make a Dask process speak mutual TLS with the certificates of `secret`.

    PEMs come through `secretKeyRef` (no volume, so the pod spec stays a plain list of containers), and
    `require-encryption` makes every listener `tls://` without touching the container's arguments."""
    def ref(variable: str, key: str) -> Obj:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [ref(naming.TLS_CA_ENV, naming.TLS_CA_KEY)]
    for cert_variable, key_variable in naming.TLS_ROLE_ENV.values():
        env += [ref(cert_variable, naming.TLS_CERT_KEY), ref(key_variable, naming.TLS_PRIVATE_KEY_KEY)]
    env.append({"name": naming.TLS_REQUIRE_ENCRYPTION_ENV, "value": "True"})
    return env


# -- the public helpers of the client API --------------------------------------------------------------------


def _pod_spec(container: Obj, run_as_root: bool) -> Obj:
    security = pod_security.container_context(run_as_root)
    if security is not None:
        container["securityContext"] = security
    return {"securityContext": pod_security.pod_context(run_as_root), "containers": [container]}


def make_worker_spec(
    image: str | None = None,
    n_workers: int | None = 3,
    resources: Mapping[str, Any] | None = None,
    env: Env = None,
    worker_command: str | Sequence[str] = DEFAULT_WORKER_COMMAND,
    run_as_root: bool = False,
) -> Obj:
    """The `worker` block of a DaskCluster or DaskWorkerGroup.

    The worker finds its scheduler through `DASK_SCHEDULER_ADDRESS` and takes its pod's name through
    `DASK_WORKER_NAME`; the operator injects both.
    """
    args = [*command_list(worker_command), "--name", f"$({naming.WORKER_NAME_ENV})", "--dashboard",
            "--dashboard-address", str(naming.WORKER_DASHBOARD_PORT)]
    container: Obj = {
        "name": "worker",
        "image": image or images.default_image(),
        "args": args,
        "env": env_list(env),
        "resources": copy.deepcopy(dict(resources or {})),
        "ports": [{"name": naming.DASHBOARD_PORT_NAME, "containerPort": naming.WORKER_DASHBOARD_PORT,
                   "protocol": "TCP"}],
    }
    worker: Obj = {"spec": _pod_spec(container, run_as_root)}
    if n_workers is not None:
        worker["replicas"] = n_workers
    return worker


def make_scheduler_spec(
    cluster_name: str,
    env: Env = None,
    resources: Mapping[str, Any] | None = None,
    image: str | None = None,
    scheduler_service_type: str = "ClusterIP",
    jupyter: bool = False,
    run_as_root: bool = False,
) -> Obj:
    """The `scheduler` block of a DaskCluster: a scheduler container, its probes and its Service."""
    args = [*DEFAULT_SCHEDULER_COMMAND, "--host", "0.0.0.0"]
    if jupyter:
        args.append("--jupyter")
    health = {"httpGet": {"port": naming.DASHBOARD_PORT_NAME, "path": "/health"}}
    container: Obj = {
        "name": "scheduler",
        "image": image or images.default_image(),
        "args": args,
        "env": env_list(env),
        "resources": copy.deepcopy(dict(resources or {})),
        "ports": [
            {"name": naming.SCHEDULER_PORT_NAME, "containerPort": naming.SCHEDULER_PORT, "protocol": "TCP"},
            {"name": naming.DASHBOARD_PORT_NAME, "containerPort": naming.DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {**health, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 5},
        "livenessProbe": {**health, "initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 5},
    }
    return {
        "spec": _pod_spec(container, run_as_root),
        "service": {
            "type": scheduler_service_type,
            "selector": naming.scheduler_selector(cluster_name),
            "ports": [
                {"name": naming.SCHEDULER_PORT_NAME, "protocol": "TCP", "port": naming.SCHEDULER_PORT,
                 "targetPort": naming.SCHEDULER_PORT_NAME},
                {"name": naming.DASHBOARD_PORT_NAME, "protocol": "TCP", "port": naming.DASHBOARD_PORT,
                 "targetPort": naming.DASHBOARD_PORT_NAME},
            ],
        },
    }


def make_cluster_spec(
    name: str,
    image: str | None = None,
    n_workers: int | None = None,
    resources: Mapping[str, Any] | None = None,
    env: Env = None,
    worker_command: str | Sequence[str] = DEFAULT_WORKER_COMMAND,
    scheduler_service_type: str = "ClusterIP",
    idle_timeout: int | None = 0,
    jupyter: bool = False,
    tls: Mapping[str, Any] | None = None,
    run_as_root: bool = False,
    network_policy: bool = False,
) -> Obj:
    """A whole DaskCluster manifest, as `KubeCluster` creates it and `dask kube gen cluster` prints it.

    `tls` is a `spec.tls` (see `tls_spec`); without it the manifest has no `tls` field at all. `image=None`: the
    image tagged for this client's versions (images.py); `run_as_root`: for images that need root, which then fail
    a namespace that enforces the `restricted` Pod Security Standard. `network_policy`: the operator guards the
    scheduler with a NetworkPolicy (`scheduler_network_policy`)."""
    image = image or images.default_image()
    spec: Obj = {
        "idleTimeout": int(idle_timeout or 0),
        "worker": make_worker_spec(image=image, n_workers=n_workers, resources=resources, env=env,
                                   worker_command=worker_command, run_as_root=run_as_root),
        "scheduler": make_scheduler_spec(cluster_name=name, env=env, resources=resources, image=image,
                                         scheduler_service_type=scheduler_service_type, jupyter=jupyter,
                                         run_as_root=run_as_root),
    }
    if tls:
        spec["tls"] = dict(tls)
    if network_policy:
        spec["networkPolicy"] = {"enabled": True}
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKCLUSTER, "metadata": {"name": name}, "spec": spec}


def make_worker_group(cluster: str, group: str, worker: Mapping[str, Any], namespace: str | None = None) -> Obj:
    """A DaskWorkerGroup named `{cluster}-{group}` that the client adds to a cluster."""
    meta: Obj = {"name": naming.worker_group_name(cluster, group),
                 "labels": {naming.CLUSTER_LABEL: cluster, naming.COMPONENT_LABEL: Component.WORKERGROUP.value}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP, "metadata": meta,
            "spec": {"cluster": cluster, "worker": copy.deepcopy(dict(worker))}}


def make_autoscaler(cluster: str, minimum: int, maximum: int, worker_group: str | None = None,
                    namespace: str | None = None) -> Obj:
    meta: Obj = {"name": naming.autoscaler_name(cluster) if worker_group is None else
                 f"{cluster}-{worker_group}",
                 "labels": {naming.CLUSTER_LABEL: cluster, naming.COMPONENT_LABEL: Component.AUTOSCALER.value}}
    if namespace:
        meta["namespace"] = namespace
    spec: Obj = {"cluster": cluster, "minimum": minimum, "maximum": maximum}
    if worker_group is not None:
        spec["workerGroup"] = naming.worker_group_name(cluster, worker_group)
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": meta, "spec": spec}


# -- what the operator creates -------------------------------------------------------------------------------


def owner_reference(parent: Mapping[str, Any]) -> Obj:
    """A controlling ownerReference: deleting the parent deletes the child through garbage collection."""
    meta = parent["metadata"]
    return {"apiVersion": parent["apiVersion"], "kind": parent["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def adoption(child: Mapping[str, Any], cluster: Mapping[str, Any], component: Component) -> Obj | None:
    """The merge patch that makes an object applied on its own (a DaskWorkerGroup, a DaskAutoscaler) its cluster's:
    owned by it, so deleted with it, and labelled with it; None when it is so already."""
    meta, cluster_meta = child["metadata"], cluster["metadata"]
    labels = meta.get("labels") or {}
    if status.owned_by(child, cluster_meta["uid"]) and labels.get(naming.CLUSTER_LABEL) == cluster_meta["name"]:
        return None
    refs = [r for r in meta.get("ownerReferences") or () if r.get("controller") is not True]
    refs.append(owner_reference(cluster))
    return {"metadata": {"ownerReferences": refs, "labels": {naming.CLUSTER_LABEL: cluster_meta["name"],
                                                             naming.COMPONENT_LABEL: component.value}}}


def client_lease(cluster: Mapping[str, Any], seconds: int, holder: str, now: str) -> Obj:
    """The Lease a cluster's clients renew (`now`: a MicroTime), owned by the cluster so it goes with it. Its
    `leaseDurationSeconds` repeats the cluster's annotation for `kubectl get lease` readers."""
    meta = cluster["metadata"]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": naming.client_lease_name(meta["name"]), "namespace": meta["namespace"],
                         "labels": naming.cluster_selector(meta["name"]),
                         "ownerReferences": [owner_reference(cluster)]},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": now,
                     "renewTime": now}}


def _propagating(annotations: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (annotations or {}).items()
            if not k.startswith(naming.NON_PROPAGATING_ANNOTATION_PREFIXES)}


def child_metadata(parent: Mapping[str, Any], sub_metadata: Mapping[str, Any] | None, name: str,
                   fixed_labels: Mapping[str, str]) -> Obj:
    """Labels and annotations: the parent's, then the spec's `metadata`, then the fixed labels, which always win."""
    pmeta = parent.get("metadata") or {}
    sub = sub_metadata or {}
    labels = {**(pmeta.get("labels") or {}), **(sub.get("labels") or {}), **fixed_labels}
    annotations = {**_propagating(pmeta.get("annotations")), **_propagating(sub.get("annotations"))}
    meta: Obj = {"name": name, "labels": labels, "ownerReferences": [owner_reference(parent)]}
    if pmeta.get("namespace"):
        meta["namespace"] = pmeta["namespace"]
    if annotations:
        meta["annotations"] = annotations
    return meta


def _inject_env(pod_spec: Obj, values: Mapping[str, str], entries: Sequence[Obj] = ()) -> None:
    """Add each variable (`values`, or whole EnvVar `entries`) to every container that does not set it already
    (the user's value wins)."""
    wanted = [{"name": k, "value": v} for k, v in values.items()] + list(entries)
    for container in pod_spec.get("containers") or ():
        env = container["env"] = list(container.get("env") or ())
        present = {e.get("name") for e in env if isinstance(e, Mapping)}
        env.extend(copy.deepcopy(e) for e in wanted if e["name"] not in present)


def scheduler_pod(cluster: Mapping[str, Any]) -> Obj:
    name = cluster["metadata"]["name"]
    scheduler = status.without_nulls(cluster["spec"]["scheduler"])
    fixed = {**naming.scheduler_selector(name), naming.ISTIO_INJECT_LABEL: "false"}
    secret = tls_secret_of(cluster)
    spec = worker_lifecycle.with_orderly_close(pod_security.with_restricted_defaults(scheduler["spec"]),
                                               tls=secret is not None)
    if secret:
        _inject_env(spec, {}, tls_env(secret))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": child_metadata(cluster, scheduler.get("metadata"), naming.scheduler_name(name), fixed),
            "spec": spec}


def scheduler_disruption_budget(cluster: Mapping[str, Any]) -> Obj:
    """The scheduler's PodDisruptionBudget: evictions of the one scheduler pod are refused (429) while it is
    healthy, so a drain waits for it instead of restarting it. Owned by the cluster, so it goes with it."""
    name = cluster["metadata"]["name"]
    selector = naming.scheduler_selector(name)
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": child_metadata(cluster, None, naming.scheduler_name(name), selector),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(selector)}}}


def wants_network_policy(cluster: Mapping[str, Any]) -> bool:
    return bool(((cluster.get("spec") or {}).get("networkPolicy") or {}).get("enabled"))


def scheduler_network_policy(cluster: Mapping[str, Any]) -> Obj:
    """Only pods of the cluster's namespace (its workers and job runner, notebooks and other clients there) and
    the operator's pod (any namespace) may open connections to the scheduler's ports. Port-forwards (the
    client's and the operator's from outside the cluster) enter through the kubelet and are not affected."""
    name = cluster["metadata"]["name"]
    ports = [{"protocol": "TCP", "port": port} for port in (naming.SCHEDULER_PORT_NAME, naming.DASHBOARD_PORT_NAME)]
    peers = [{"podSelector": {}},
             {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(naming.OPERATOR_POD_LABELS)}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": child_metadata(cluster, None, naming.network_policy_name(name), naming.cluster_selector(name)),
            "spec": {"podSelector": {"matchLabels": naming.scheduler_selector(name)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": peers, "ports": ports}]}}


def tls_secret(cluster: Mapping[str, Any], data: Mapping[str, str]) -> Obj:
    """The generated `{name}-tls` Secret (`data`: base64 values), owned by the cluster so it goes with it."""
    name = cluster["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Secret", "type": naming.TLS_SECRET_TYPE, "immutable": True,
            "metadata": child_metadata(cluster, None, naming.tls_secret_name(name), naming.cluster_selector(name)),
            "data": dict(data)}


def scheduler_service(cluster: Mapping[str, Any]) -> Obj:
    """The scheduler Service; its selector is always the scheduler's fixed labels, so it cannot miss the pod."""
    name = cluster["metadata"]["name"]
    scheduler = status.without_nulls(cluster["spec"]["scheduler"])
    spec = scheduler.get("service") or {}
    spec["selector"] = naming.scheduler_selector(name)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": child_metadata(cluster, scheduler.get("metadata"), naming.scheduler_name(name),
                                       naming.scheduler_selector(name)),
            "spec": spec}


def default_worker_group(cluster: Mapping[str, Any]) -> Obj:
    name = cluster["metadata"]["name"]
    worker = status.without_nulls(cluster["spec"]["worker"])
    fixed = {naming.CLUSTER_LABEL: name, naming.COMPONENT_LABEL: Component.WORKERGROUP.value}
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP,
            "metadata": child_metadata(cluster, worker.get("metadata"), naming.default_worker_group_name(name),
                                       fixed),
            "spec": {"cluster": name, "worker": worker}}


def worker_pod(group: Mapping[str, Any], cluster_name: str, domain: str = naming.DEFAULT_CLUSTER_DOMAIN,
               pod_name: str | None = None, tls_secret: str | None = None, grace_seconds: int | None = None) -> Obj:
    """A worker of `group`; `tls_secret` (the cluster's, see `tls_secret_of`) makes it speak TLS; `grace_seconds`
    gives it the grace period and preStop hook in which it is retired when deleted (see worker_lifecycle)."""
    group_name = group["metadata"]["name"]
    namespace = group["metadata"].get("namespace", "default")
    worker = status.without_nulls(group["spec"]["worker"])
    name = pod_name or naming.worker_pod_name(group_name)
    fixed = {**naming.worker_selector(cluster_name, group_name), naming.ISTIO_INJECT_LABEL: "false"}
    spec = pod_security.with_restricted_defaults(worker["spec"])
    if grace_seconds is not None:
        spec = worker_lifecycle.with_retirement(spec, grace_seconds)
    address = naming.scheduler_address(cluster_name, namespace, domain, tls=tls_secret is not None)
    _inject_env(spec, {naming.WORKER_NAME_ENV: name, naming.SCHEDULER_ADDRESS_ENV: address},
                tls_env(tls_secret) if tls_secret else ())
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": child_metadata(group, worker.get("metadata"), name, fixed), "spec": spec}


def job_cluster(job: Mapping[str, Any]) -> Obj:
    """The DaskCluster of a DaskJob: named after the job, its spec is `spec.cluster.spec`."""
    name = job["metadata"]["name"]
    cluster = status.without_nulls(job["spec"]["cluster"])
    return {"apiVersion": naming.API_VERSION, "kind": naming.DASKCLUSTER,
            "metadata": child_metadata(job, cluster.get("metadata"), name, naming.cluster_selector(name)),
            "spec": cluster["spec"]}


def job_runner_pod(job: Mapping[str, Any], domain: str = naming.DEFAULT_CLUSTER_DOMAIN) -> Obj:
    name = job["metadata"]["name"]
    namespace = job["metadata"].get("namespace", "default")
    runner = status.without_nulls(job["spec"]["job"])
    fixed = {**naming.job_runner_selector(name), naming.ISTIO_INJECT_LABEL: "false"}
    spec = pod_security.with_restricted_defaults(runner["spec"])
    spec.setdefault("restartPolicy", "OnFailure")
    secret = tls_secret_of({"metadata": {"name": name}, "spec": job["spec"]["cluster"].get("spec")})
    _inject_env(spec, {naming.SCHEDULER_ADDRESS_ENV: naming.scheduler_address(name, namespace, domain,
                                                                              tls=secret is not None)},
                tls_env(secret) if secret else ())
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": child_metadata(job, runner.get("metadata"), naming.job_runner_name(name), fixed),
            "spec": spec}
