"""Bad input: random and adversarial DaskCluster, DaskWorkerGroup, DaskJob and DaskAutoscaler specs thrown at the
API (through kr8s, and a few through kubectl) of a LocalKube of their own, reconciled by an operator started with a
cap of 5 workers per cluster (`DASK_KUBERNETES__OPERATOR__MAX_WORKERS_PER_CLUSTER=5`).

Each spec is rejected by the API server (4xx, never 5xx), or, once stored, gets a verdict from the operator within
a bound: `phase: Error` / `SpecValid=False` with a reason, a job that ends `Failed` with a reason, an autoscaler or
group condition saying why it does nothing, or (the spec was fine after all) a valid, progressing object. Meanwhile
the operator stays alive, logs no repeated tracebacks for one object, does not loop hot (API requests counted over
a quiet window) and never runs more than the cap of worker pods for any cluster, even for 10**9 replicas.

Schedulers, workers and job runners are simulated (no processes), except the one `fz-base` cluster that groups and
autoscalers attach to, whose scheduler is real so that the autoscaler has a target to follow.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kr8s
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kr8s.objects import new_class
from localkube.cluster import LocalKube, ThreadedLocalKube
from localkube.pytest_plugin import run_kubectl
from localkube.testing import api_request

from dask_kube import naming, specs
from tests.conftest import CRDS, OperatorProcess
from tests.reliability import SIMULATE, record, tracebacks, until

pytestmark = [pytest.mark.localkube_only, pytest.mark.e2e]

CAP = 5
VERDICT_SECONDS = 30.0
QUIET_WINDOW = 6.0
FUZZ = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
CLASSES = {kind: new_class(kind, version=naming.API_VERSION, namespaced=True)
           for kind in (naming.DASKCLUSTER, naming.DASKWORKERGROUP, naming.DASKJOB, naming.DASKAUTOSCALER)}
_serial = itertools.count()


@dataclass
class Capped:
    local: ThreadedLocalKube
    kubeconfig: Path
    cache: Path
    operator: OperatorProcess
    api: Any

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return api_request(self.kubeconfig, method, path, body, headers={"User-Agent": "fuzz-test"})

    def kubectl(self, *args: str, **kw: Any) -> Any:
        return run_kubectl(self.kubeconfig, self.cache, *args, **kw)

    def namespace(self, name: str) -> str:
        code, body = self.request("POST", "/api/v1/namespaces",
                                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        assert code in (201, 409), body
        return name

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        base = "/api/v1" if plural == "pods" else f"/apis/{naming.GROUP}/{naming.VERSION}"
        code, body = self.request("GET", f"{base}/namespaces/{namespace}/{plural}")
        assert code == 200, body
        return body["items"]  # type: ignore[no-any-return]

    def operator_requests(self) -> int:
        counts = self.local.call(self.local.kube.request_counts)
        return sum(n for agent, n in counts.items() if agent.lower().startswith(("kopf", "kr8s")))


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capped]:
    cache = tmp_path_factory.mktemp("fuzz-kubectl-cache")
    with LocalKube.in_thread() as local:
        run_kubectl(local.kubeconfig, cache, "apply", "-f", str(CRDS))
        for crd in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
            run_kubectl(local.kubeconfig, cache, "wait", "--for=condition=Established",
                        f"crd/{crd}.kubernetes.dask.org", "--timeout=30s")
        handle = OperatorProcess(local.kubeconfig, tmp_path_factory.mktemp("fuzz-operator") / "operator.log")
        saved = os.environ.get("DASK_KUBERNETES__OPERATOR__MAX_WORKERS_PER_CLUSTER")
        os.environ["DASK_KUBERNETES__OPERATOR__MAX_WORKERS_PER_CLUSTER"] = str(CAP)
        try:
            handle.start()
        finally:
            if saved is None:
                del os.environ["DASK_KUBERNETES__OPERATOR__MAX_WORKERS_PER_CLUSTER"]
            else:
                os.environ["DASK_KUBERNETES__OPERATOR__MAX_WORKERS_PER_CLUSTER"] = saved
        try:
            yield Capped(local, local.kubeconfig, cache, handle, kr8s.api(kubeconfig=str(local.kubeconfig)))
        finally:
            log = handle.log_path.read_text(errors="replace")
            handle.stop()
            _check_log(log)


def _check_log(log: str) -> None:
    """No object may fail to reconcile over and over (one failure during a fault or a race is tolerated)."""
    failing = Counter(line.split(" failed (attempt")[0].split("reconciling ", 1)[-1]
                      for line in tracebacks(log))
    repeated = {what: n for what, n in failing.items() if n >= 3}
    assert not repeated, f"repeated reconcile failures (a bug): {repeated}"


# -- strategies --------------------------------------------------------------------------------------------------

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
                 st.text(max_size=12), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
REPLICAS = st.one_of(st.integers(-3, 8), st.sampled_from([10**9, 2**31, 2**63 - 1, -(10**9)]), JUNK)
NAMES = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True),
    st.integers(52, 70).map(lambda n: "n" * n),  # fine for the API server, too long for `{name}-scheduler`
    st.integers(250, 260).map(lambda n: "l" * n),  # too long for the API server
    st.text(min_size=1, max_size=16),  # anything, unicode included
    st.sampled_from(["UPPER", "dots.in.name", "-lead", "ünïcödé", "名前", "emoji-🙂", "sp ace", "a/b"]),
)
CONFLICTING_LABELS = st.sampled_from([
    {naming.CLUSTER_LABEL: "someone-else", naming.COMPONENT_LABEL: "scheduler"},
    {naming.WORKERGROUP_LABEL: "other-group", naming.COMPONENT_LABEL: "worker"},
    {"ключ": "значение"}, {"ok": "v" * 70}, {"a" * 64: "x"}, {"": "empty-key"},
])
POD_JUNK = st.sampled_from([
    ("containers", []), ("containers", "dask"), ("containers", [{"image": "no-name"}]),
    ("containers.0.resources", {"limit": {"cpu": "1"}}), ("containers.0.resources", {"requests": {"cpu": "lots"}}),
    ("containers.0.env", [{"name": "1BAD", "value": 3}]), ("containers.0.ports", [{"containerPort": "http"}]),
    ("containers.0.name", "Not_A_DNS_Label"), ("containers.0.args", 42), ("restartPolicy", "Sometimes"),
    ("nodeSelector", {"k": 1}), ("containers.0.imagePullPolicy", "Sometimes"), ("volumes", [{"name": "v"}]),
])


# Pod-spec fields the API server accepts as null (and reads as absent), relative to a PodSpec.
NULLABLE = ["containers.0.env", "containers.0.args", "containers.0.command", "containers.0.ports",
            "containers.0.volumeMounts", "containers.0.resources", "containers.0.resources.limits",
            "containers.0.envFrom", "containers.0.readinessProbe", "volumes", "tolerations", "nodeSelector",
            "affinity", "initContainers", "imagePullSecrets", "securityContext"]


@dataclass(frozen=True)
class Mutation:
    op: str  # set | delete
    path: str
    value: Any = None


def _mutations(set_paths: list[str], delete_paths: list[str], pod_paths: list[str],
               label_paths: list[str]) -> st.SearchStrategy[list[Mutation]]:
    one = st.one_of(
        st.builds(Mutation, st.just("set"), st.sampled_from(set_paths), JUNK),
        st.builds(Mutation, st.just("delete"), st.sampled_from(delete_paths)),
        st.tuples(st.sampled_from(pod_paths), POD_JUNK).map(lambda t: Mutation("set", f"{t[0]}.{t[1][0]}", t[1][1])),
        st.builds(Mutation, st.just("set"), st.sampled_from(label_paths), CONFLICTING_LABELS),
        # Nulls: absent to the API server, so absent to the operator too.
        st.tuples(st.sampled_from(pod_paths), st.sampled_from(NULLABLE)).map(
            lambda t: Mutation("set", f"{t[0]}.{t[1]}", None)),
        st.builds(Mutation, st.just("set"), st.sampled_from(label_paths), st.none()),
    )
    return st.lists(one, max_size=3)


def _apply(obj: dict[str, Any], mutations: list[Mutation]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    for m in mutations:
        *parents, last = m.path.split(".")
        node: Any = obj
        for key in parents:
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                node = None
                break
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            if m.op == "set":
                node[int(last)] = copy.deepcopy(m.value)
            else:
                del node[int(last)]
        elif isinstance(node, dict):
            if m.op == "set":
                node[last] = copy.deepcopy(m.value)
            else:
                node.pop(last, None)
    return obj


def _simulated(obj: dict[str, Any], *paths: str) -> dict[str, Any]:
    """Keep every pod the spec could create simulated (no processes), whatever the mutations did to it."""
    for path in paths:
        node: Any = obj
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            meta = node.setdefault("metadata", {})
            if isinstance(meta, dict):
                annotations = meta.setdefault("annotations", {})
                if isinstance(annotations, dict):
                    annotations.update(SIMULATE)
                else:
                    meta["annotations"] = dict(SIMULATE)
            else:
                node["metadata"] = {"annotations": dict(SIMULATE)}
    return obj


def _cluster(name: str, replicas: Any = 1) -> dict[str, Any]:
    obj = specs.make_cluster_spec(name, n_workers=1)
    obj["spec"]["worker"]["replicas"] = replicas
    return _simulated(obj, "spec.worker", "spec.scheduler")


def _unique(name: str) -> str:
    return f"{name}{next(_serial)}"


# -- submitting and judging --------------------------------------------------------------------------------------


@dataclass
class Tally:
    tried: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> what was sent
    verdicts: Counter[str] = field(default_factory=Counter)
    kubectl: int = 0
    judged_alone: int = 0
    started: float = field(default_factory=time.monotonic)


def _submit(capped: Capped, kind: str, namespace: str, body: dict[str, Any], tally: Tally) -> None:
    tally.tried += 1
    obj = CLASSES[kind](body, namespace=namespace, api=capped.api)
    try:
        obj.create()
    except kr8s.ServerError as err:
        code = err.response.status_code if err.response is not None else 0
        assert 400 <= code < 500 and code != 409, f"{kind} answered {code} ({err}) for {body}"
        tally.rejected[code] += 1
        return
    tally.accepted[obj.name] = body


def _over_cap(capped: Capped, namespace: str) -> dict[str, int]:
    """Groups (and, where clusters have a single group, clusters) with more than CAP live worker pods."""
    live = [p["metadata"]["labels"] for p in capped.list("pods", namespace)
            if p["metadata"]["labels"].get(naming.COMPONENT_LABEL) == "worker"
            and not p["metadata"].get("deletionTimestamp")]
    over = {f"group {k}": n for k, n in Counter(lb.get(naming.WORKERGROUP_LABEL) for lb in live).items() if n > CAP}
    if namespace in ("fz-clusters", "fz-jobs"):  # one group per cluster there (multi-group caps are tested below)
        over |= {f"cluster {k}": n for k, n in Counter(lb.get(naming.CLUSTER_LABEL) for lb in live).items()
                 if n > CAP}
    return over


def _judge(capped: Capped, plural: str, namespace: str, tally: Tally, verdict: Any) -> None:
    """Wait (one deadline for all) until every accepted object has a verdict; check the cap on every poll."""
    pending = dict(tally.accepted)

    def poll() -> bool:
        over = _over_cap(capped, namespace)
        assert not over, f"more than {CAP} worker pods: {over}"
        for obj in capped.list(plural, namespace):
            name = obj["metadata"]["name"]
            if name in pending and (v := verdict(obj)):
                tally.verdicts[v] += 1
                del pending[name]
        return not pending

    until(poll, f"a verdict on every accepted {plural}", VERDICT_SECONDS,
          explain=lambda: json.dumps({n: next((o.get("status") for o in capped.list(plural, namespace)
                                              if o["metadata"]["name"] == n), "gone") for n in pending},
                                     indent=1, default=str)[:4000], every=0.5)


def _reason(status: dict[str, Any], type_: str, value: str) -> str | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_ and cond.get("status") == value and cond.get("reason"):
            return str(cond["reason"])
    return None


def _quiet(capped: Capped, objects: int) -> float:
    """Operator requests per second over a quiet window (no test traffic but these counters); asserts a bound."""
    assert capped.operator.proc is not None and capped.operator.proc.poll() is None, capped.operator.tail()
    stats = capped.local.kube.server.stats
    before, by_method = capped.operator_requests(), Counter(stats)
    time.sleep(QUIET_WINDOW)  # a measuring window, not a wait for a condition
    rate = (capped.operator_requests() - before) / QUIET_WINDOW
    by_method = Counter(stats) - by_method
    # Every loop GETs its object once per resync (2 s here) and a few more while something is on its way;
    # a hot loop would make hundreds per second.
    bound = 15 + 3 * objects
    assert rate <= bound, (f"the operator loops hot: {rate:.0f} requests/s for {objects} objects (bound {bound}); "
                           f"by client and method: {dict(by_method)}\n{capped.operator.tail(30)}")
    assert capped.operator.proc.poll() is None, capped.operator.tail()
    return rate


def _record(test: str, kind: str, tally: Tally, rate: float) -> None:
    stored = len(tally.accepted) + tally.judged_alone
    record(test, kind, kind="input", injected=f"{tally.tried} random/adversarial {kind} specs"
           + (f" ({tally.kubectl} through kubectl)" if tally.kubectl else ""),
           survived=f"rejected by the API server: {dict(tally.rejected)}; verdicts on the {stored} stored: "
                    f"{dict(tally.verdicts)}; operator requests in a quiet window {rate:.1f}/s; at most {CAP} "
                    "worker pods per group", lost="nothing", seconds=time.monotonic() - tally.started,
           tried=tally.tried, rejected=sum(tally.rejected.values()), verdicts=dict(tally.verdicts),
           requests_per_second=round(rate, 1))


def _cleanup(capped: Capped, namespace: str, plural: str, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    for obj in capped.list(plural, namespace):
        if obj["metadata"]["name"] not in keep:
            capped.request("DELETE", f"/apis/{naming.GROUP}/{naming.VERSION}/namespaces/{namespace}/{plural}/"
                                     f"{urllib.parse.quote(obj['metadata']['name'])}")


# -- DaskCluster -------------------------------------------------------------------------------------------------

CLUSTER_MUTATIONS = _mutations(
    set_paths=["spec.worker.replicas", "spec.idleTimeout", "spec.scheduler.service", "spec.scheduler.service.type",
               "spec.worker.spec", "spec.scheduler", "spec.worker", "spec", "metadata.labels",
               "spec.scheduler.service.ports", "spec.worker.spec.containers.0", "spec.unknownField"],
    delete_paths=["spec.scheduler", "spec.worker", "spec.worker.spec", "spec.scheduler.service",
                  "spec.worker.spec.containers", "spec.scheduler.spec.containers.0.name", "spec.worker.replicas",
                  "spec"],
    pod_paths=["spec.worker.spec", "spec.scheduler.spec"],
    label_paths=["spec.worker.metadata.labels", "spec.scheduler.metadata.labels", "metadata.labels"])


def _cluster_verdict(obj: dict[str, Any]) -> str | None:
    status = obj.get("status") or {}
    if status.get("phase") == "Error":
        return f"Error/{_reason(status, 'SpecValid', 'False')}" if _reason(status, "SpecValid", "False") else None
    if _reason(status, "SpecValid", "True"):
        return f"valid/{status.get('phase')}"
    return None


@FUZZ
@given(name=NAMES, replicas=REPLICAS, mutations=CLUSTER_MUTATIONS)
def _fuzz_clusters(capped: Capped, tally: Tally, name: str, replicas: Any, mutations: list[Mutation]) -> None:
    body = _simulated(_apply(_cluster(_unique(name), replicas), mutations), "spec.worker", "spec.scheduler")
    _submit(capped, naming.DASKCLUSTER, "fz-clusters", body, tally)


def test_fuzz_daskclusters(capped: Capped) -> None:
    ns = capped.namespace("fz-clusters")
    tally = Tally()
    _fuzz_clusters(capped, tally)
    # A few through kubectl too (client-side and server-side validation of `kubectl apply`).
    for name, mutate in [("kc-neg", lambda c: c["spec"]["worker"].update(replicas=-1)),
                         ("kc-str", lambda c: c["spec"]["worker"].update(replicas="three")),
                         ("kc-" + "x" * 60, lambda c: None),
                         ("kc-nocontainers", lambda c: c["spec"]["worker"]["spec"].update(containers=[])),
                         ("kc-huge", lambda c: c["spec"]["worker"].update(replicas=10**9))]:
        obj = _cluster(name)
        mutate(obj)
        tally.tried += 1
        tally.kubectl += 1
        proc = capped.kubectl("--namespace", ns, "apply", "-f", "-", input=yaml.safe_dump(obj), check=False)
        if proc.returncode:
            assert "Invalid value" in proc.stderr or "invalid" in proc.stderr.lower(), proc.stderr
            tally.rejected[422] += 1
        else:
            tally.accepted[name] = obj
    assert tally.accepted and tally.rejected, "the strategies should produce both accepted and rejected specs"
    _judge(capped, "daskclusters", ns, tally, _cluster_verdict)
    # A valid cluster asking for 10**9 workers gets exactly the cap of (simulated) pods.
    until(lambda: len([p for p in capped.list("pods", ns) if p["metadata"]["labels"].get(naming.CLUSTER_LABEL)
                       == "kc-huge" and p["metadata"]["labels"].get(naming.COMPONENT_LABEL) == "worker"]) == CAP,
          f"kc-huge to have exactly {CAP} worker pods", 30)
    assert capped.list("daskworkergroups", ns)
    objects = len(capped.list("daskclusters", ns)) + len(capped.list("daskworkergroups", ns))
    rate = _quiet(capped, objects)
    _record("test_fuzz_daskclusters", "DaskCluster", tally, rate)
    _cleanup(capped, ns, "daskclusters")


# -- DaskWorkerGroup and DaskAutoscaler: attached to a real-scheduler cluster -----------------------------------


@pytest.fixture(scope="module")
def base(capped: Capped) -> str:
    ns = capped.namespace("fz-base")
    obj = specs.make_cluster_spec("fz-base", n_workers=1)
    obj["spec"]["worker"]["metadata"] = {"annotations": dict(SIMULATE)}
    _submit(capped, naming.DASKCLUSTER, ns, obj, Tally())
    until(lambda: any((c.get("status") or {}).get("phase") == "Running" for c in capped.list("daskclusters", ns)),
          "fz-base Running", 90)
    return ns


GROUP_MUTATIONS = _mutations(
    set_paths=["spec.worker.replicas", "spec.cluster", "spec.worker.spec", "spec.worker", "spec"],
    delete_paths=["spec.cluster", "spec.worker", "spec.worker.spec", "spec.worker.spec.containers"],
    pod_paths=["spec.worker.spec"], label_paths=["spec.worker.metadata.labels", "metadata.labels"])


def _group_verdict(obj: dict[str, Any]) -> str | None:
    status = obj.get("status") or {}
    if reason := _reason(status, "SpecValid", "False"):
        return f"SpecValid=False/{reason}"
    if reason := _reason(status, "Ready", "False"):
        return f"Ready=False/{reason}"
    if _reason(status, "SpecValid", "True"):
        return "valid"
    return None


@FUZZ
@given(name=NAMES, cluster=st.one_of(st.just("fz-base"), st.just("missing"), st.text(max_size=8)),
       replicas=REPLICAS, mutations=GROUP_MUTATIONS)
def _fuzz_groups(capped: Capped, tally: Tally, name: str, cluster: str, replicas: Any,
                 mutations: list[Mutation]) -> None:
    worker = _cluster("x")["spec"]["worker"]
    worker["replicas"] = replicas
    body = {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP, "metadata": {"name": _unique(name)},
            "spec": {"cluster": cluster, "worker": worker}}
    _submit(capped, naming.DASKWORKERGROUP, "fz-base", _simulated(_apply(body, mutations), "spec.worker"), tally)


def test_fuzz_daskworkergroups(capped: Capped, base: str) -> None:
    tally = Tally()
    _fuzz_groups(capped, tally)
    assert tally.accepted and tally.rejected
    _judge(capped, "daskworkergroups", base, tally, _group_verdict)
    objects = len(capped.list("daskworkergroups", base)) + 1
    rate = _quiet(capped, objects)
    _record("test_fuzz_daskworkergroups", "DaskWorkerGroup", tally, rate)
    _cleanup(capped, base, "daskworkergroups", keep={"fz-base-default"})


# -- DaskAutoscaler ----------------------------------------------------------------------------------------------

BOUNDS = st.one_of(st.integers(-2, 8), st.sampled_from([10**9, 2**63 - 1, -(10**9)]), JUNK)


def _autoscaler_verdict(obj: dict[str, Any]) -> str | None:
    status = obj.get("status") or {}
    for type_, value in (("SpecValid", "False"), ("Ready", "False"), ("Ready", "True")):
        if reason := _reason(status, type_, value):
            return f"{type_}={value}/{reason}"
    return None


@FUZZ
@given(name=NAMES, cluster=st.one_of(st.just("fz-base"), st.just("missing"), st.text(max_size=8)),
       minimum=BOUNDS, maximum=BOUNDS, group=st.one_of(st.none(), st.just("fz-base-default"), JUNK))
def _fuzz_autoscalers(capped: Capped, tally: Tally, name: str, cluster: str, minimum: Any, maximum: Any,
                      group: Any) -> None:
    spec: dict[str, Any] = {"cluster": cluster, "minimum": minimum, "maximum": maximum}
    if group is not None:
        spec["workerGroup"] = group
    body = {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": {"name": _unique(name)},
            "spec": spec}
    _submit(capped, naming.DASKAUTOSCALER, "fz-base", body, tally)
    if cluster == "fz-base" and body["metadata"]["name"] in tally.accepted:
        # Two autoscalers of one group fight (see test_two_autoscalers_of_one_group_do_not_fight): judge this one
        # alone, then delete it before the next.
        single = Tally(accepted={body["metadata"]["name"]: body})
        _judge(capped, "daskautoscalers", "fz-base", single, _autoscaler_verdict)
        tally.verdicts.update(single.verdicts)
        del tally.accepted[body["metadata"]["name"]]
        tally.judged_alone += 1
        _cleanup(capped, "fz-base", "daskautoscalers")
        until(lambda: not capped.list("daskautoscalers", "fz-base"), "the autoscaler to go", 15)


def test_fuzz_daskautoscalers(capped: Capped, base: str) -> None:
    tally = Tally()
    _fuzz_autoscalers(capped, tally)
    assert tally.rejected and (tally.accepted or tally.judged_alone)
    _judge(capped, "daskautoscalers", base, tally, _autoscaler_verdict)
    # An autoscaler whose minimum is 10**9 on a cluster that answers: the group is asked for 10**9 workers.
    _cleanup(capped, base, "daskautoscalers")
    until(lambda: not capped.list("daskautoscalers", base), "the fuzzed autoscalers to go", 15)
    huge = {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": {"name": "huge-minimum"},
            "spec": {"cluster": "fz-base", "minimum": 10**9, "maximum": 10**9}}
    _submit(capped, naming.DASKAUTOSCALER, base, huge, tally)
    until(lambda: len([p for p in capped.list("pods", base) if p["metadata"]["labels"].get(naming.WORKERGROUP_LABEL)
                       == "fz-base-default" and not p["metadata"].get("deletionTimestamp")]) == CAP,
          f"fz-base-default capped at {CAP} pods", 30)
    assert not _over_cap(capped, base)
    objects = len(capped.list("daskautoscalers", base)) + len(capped.list("daskworkergroups", base)) + 1
    rate = _quiet(capped, objects)
    _record("test_fuzz_daskautoscalers", "DaskAutoscaler", tally, rate)
    _cleanup(capped, base, "daskautoscalers")
    until(lambda: not capped.list("daskautoscalers", base), "the autoscalers to go", 15)


def test_two_autoscalers_of_one_group_do_not_fight(capped: Capped, base: str) -> None:
    for name, bound in (("fight-low", 0), ("fight-high", 3)):
        body = {"apiVersion": naming.API_VERSION, "kind": naming.DASKAUTOSCALER, "metadata": {"name": name},
                "spec": {"cluster": "fz-base", "minimum": bound, "maximum": bound}}
        _submit(capped, naming.DASKAUTOSCALER, base, body, Tally())
    try:
        seen = []
        deadline = time.monotonic() + 12  # a few autoscaler intervals
        while time.monotonic() < deadline:
            group = next(g for g in capped.list("daskworkergroups", base) if g["metadata"]["name"] == "fz-base-default")
            replicas = group["spec"]["worker"]["replicas"]
            if not seen or seen[-1] != replicas:
                seen.append(replicas)
            time.sleep(0.3)
        assert len(seen) <= 2, f"the group's replicas flapped: {seen}"
        # Whoever won, the group names it, its bound holds, and the other one says why it does nothing.
        winner = group["metadata"].get("annotations", {}).get(naming.AUTOSCALED_BY_ANNOTATION)
        assert winner in ("fight-low", "fight-high") and replicas == {"fight-low": 0, "fight-high": 3}[winner]
        [loser] = [a for a in capped.list("daskautoscalers", base) if a["metadata"]["name"] != winner]
        ready = next(c for c in loser["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", naming.Reason.CONFLICTING_AUTOSCALER)
    finally:
        _cleanup(capped, base, "daskautoscalers")
        until(lambda: not capped.list("daskautoscalers", base), "the autoscalers to go", 15)


# -- DaskJob -----------------------------------------------------------------------------------------------------

JOB_MUTATIONS = _mutations(
    set_paths=["spec.activeDeadlineSeconds", "spec.ttlSecondsAfterFinished", "spec.job.spec.restartPolicy",
               "spec.job", "spec.cluster", "spec.cluster.spec.worker.replicas", "spec.job.spec"],
    delete_paths=["spec.job", "spec.cluster", "spec.job.spec.containers", "spec.cluster.spec.scheduler"],
    pod_paths=["spec.job.spec", "spec.cluster.spec.worker.spec", "spec.cluster.spec.scheduler.spec"],
    label_paths=["spec.cluster.spec.worker.metadata.labels", "spec.job.metadata.labels"])


def _job_verdict(obj: dict[str, Any]) -> str | None:
    status = obj.get("status") or {}
    state = status.get("jobStatus")
    if state == "Failed":
        return f"Failed/{_reason(status, 'Failed', 'True')}" if _reason(status, "Failed", "True") else None
    if state in ("ClusterCreated", "Running", "Successful"):
        return f"progressing/{state}"
    return None


@FUZZ
@given(name=NAMES, replicas=REPLICAS, mutations=JOB_MUTATIONS)
def _fuzz_jobs(capped: Capped, tally: Tally, name: str, replicas: Any, mutations: list[Mutation]) -> None:
    job_name = _unique(name)
    cluster = _cluster(job_name, replicas)
    body = {"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB, "metadata": {"name": job_name},
            "spec": {"job": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "job", "image": "ghcr.io/dask/dask:latest", "args": ["python", "-c", "print(1)"]}]}},
                     "cluster": {"spec": cluster["spec"]}}}
    body = _simulated(_apply(body, mutations), "spec.job", "spec.cluster.spec.worker", "spec.cluster.spec.scheduler")
    _submit(capped, naming.DASKJOB, "fz-jobs", body, tally)


def test_fuzz_daskjobs(capped: Capped) -> None:
    ns = capped.namespace("fz-jobs")
    tally = Tally()
    _fuzz_jobs(capped, tally)
    assert tally.accepted and tally.rejected
    _judge(capped, "daskjobs", ns, tally, _job_verdict)
    objects = len(capped.list("daskjobs", ns)) + len(capped.list("daskclusters", ns)) * 2
    rate = _quiet(capped, objects)
    _record("test_fuzz_daskjobs", "DaskJob", tally, rate)
    _cleanup(capped, ns, "daskjobs")


# -- nulls are absent ---------------------------------------------------------------------------------------------


def _nulled(obj: dict[str, Any], pod_paths: list[str], label_paths: list[str]) -> dict[str, Any]:
    return _apply(obj, [Mutation("set", f"{pod}.{field}", None) for pod in pod_paths for field in NULLABLE]
                  + [Mutation("set", path, None) for path in label_paths])


def test_every_null_the_api_server_accepts_is_absent(capped: Capped) -> None:
    """Every nullable pod-spec field null at once, in a cluster, a worker group and a job: each is valid and
    creates its pods (the operator used to raise TypeError on `env: null`, as dask-kubernetes writes it)."""
    started = time.monotonic()
    ns = capped.namespace("fz-nulls")
    cluster = _nulled(_cluster("nulls", 2), ["spec.worker.spec", "spec.scheduler.spec"],
                      ["spec.worker.metadata.labels", "spec.scheduler.metadata.labels", "metadata.labels"])
    group = _nulled({"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP,
                     "metadata": {"name": "nulls-more"},
                     "spec": {"cluster": "nulls", "worker": _cluster("x", 1)["spec"]["worker"]}},
                    ["spec.worker.spec"], ["spec.worker.metadata.labels"])
    job = _nulled({"apiVersion": naming.API_VERSION, "kind": naming.DASKJOB, "metadata": {"name": "nulls-job"},
                   "spec": {"job": {"metadata": {"annotations": dict(SIMULATE)}, "spec": {
                       "restartPolicy": "Never", "containers": [{"name": "job", "image": "ghcr.io/dask/dask:latest",
                                                                  "args": ["python", "-c", "print(1)"]}]}},
                            "cluster": {"spec": _cluster("x", 1)["spec"]}}},
                  ["spec.job.spec", "spec.cluster.spec.worker.spec", "spec.cluster.spec.scheduler.spec"],
                  ["spec.job.metadata.labels", "spec.cluster.spec.worker.metadata.labels"])
    assert cluster["spec"]["worker"]["spec"]["containers"][0]["env"] is None
    tally = Tally()
    for kind, body in ((naming.DASKCLUSTER, cluster), (naming.DASKWORKERGROUP, group), (naming.DASKJOB, job)):
        _submit(capped, kind, ns, body, tally)
    assert not tally.rejected, tally.rejected
    for kind, verdict in ((naming.DASKCLUSTER, _cluster_verdict), (naming.DASKWORKERGROUP, _group_verdict),
                          (naming.DASKJOB, _job_verdict)):
        only = Tally(accepted={n: b for n, b in tally.accepted.items() if b["kind"] == kind})
        _judge(capped, naming.PLURALS[kind], ns, only, verdict)
        # Valid (a group waits for its simulated scheduler: Ready=False/SchedulerStarting, not a spec problem).
        assert not any(v.startswith(("Error", "SpecValid=False", "Failed")) for v in only.verdicts), only.verdicts
        tally.verdicts.update(only.verdicts)

    def pods() -> dict[str, int]:
        return Counter(p["metadata"]["labels"].get(naming.WORKERGROUP_LABEL, p["metadata"]["labels"].get(
            naming.COMPONENT_LABEL)) for p in capped.list("pods", ns))
    until(lambda: pods().get("nulls-default") == 2 and pods().get("nulls-more") == 1 and pods().get("scheduler"),
          "the null-laden cluster's and group's pods", 30, explain=lambda: str(pods()))
    failed = [t for t in tracebacks(capped.operator.log_path.read_text(errors="replace")) if ns in t]
    assert not failed, failed
    record("test_every_null_the_api_server_accepts_is_absent", "nulls", kind="input",
           injected=f"a DaskCluster, DaskWorkerGroup and DaskJob with all of {', '.join(NULLABLE)} and the "
                    "templates' metadata.labels null",
           survived=f"all accepted and valid ({dict(tally.verdicts)}); the scheduler and 3 worker pods created; no "
                    "operator traceback", seconds=time.monotonic() - started)
    for plural in ("daskjobs", "daskworkergroups", "daskclusters"):
        _cleanup(capped, ns, plural)


# -- the cap is per cluster --------------------------------------------------------------------------------------


def test_worker_cap_holds_per_cluster_across_groups(capped: Capped) -> None:
    ns = capped.namespace("fz-multi")
    _submit(capped, naming.DASKCLUSTER, ns, _cluster("fz-multi", 10**9), Tally())
    extra = {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP, "metadata": {"name": "fz-multi-more"},
             "spec": {"cluster": "fz-multi", "worker": _cluster("x", 10**9)["spec"]["worker"]}}
    _submit(capped, naming.DASKWORKERGROUP, ns, extra, Tally())

    def workers() -> int:
        return len([p for p in capped.list("pods", ns) if p["metadata"]["labels"].get(naming.COMPONENT_LABEL)
                    == "worker"])
    until(lambda: workers() >= CAP, "the first workers", 30)
    deadline = time.monotonic() + 6  # both groups have reconciled several times by then (resync 2 s)
    while time.monotonic() < deadline:
        assert workers() <= CAP, f"{workers()} worker pods for one cluster (cap {CAP})"
        time.sleep(0.3)


def _observed(groups: list[dict[str, Any]], name: str) -> bool:
    """Whether the operator finished a pass over the group's latest spec."""
    group = next(g for g in groups if g["metadata"]["name"] == name)
    return (group.get("status") or {}).get("observedGeneration") == group["metadata"]["generation"]


@pytest.mark.parametrize("stalled", ["pod creates", "the extra group's adoption, then pod creates"])
def test_worker_cap_counts_the_other_groups_creates_in_flight(capped: Capped, stalled: str) -> None:
    """Requests that take seconds (a slow API server, an admission webhook): a group that decides meanwhile must
    count another group's pods still being created, or both fill the same room. The group whose name sorts first
    is owed the cap, so it is the one that would grow into it. A plan's creates count from the moment it is acted
    on: its patches (here the adoption of the extra group by its cluster) go first."""
    ns = capped.namespace(_unique("fz-slow"))
    stalls: list[Any] = []

    def posted() -> int:
        return 1000 - capped.local.call(getattr, stalls[0], "count")

    def workers() -> int:
        return len([p for p in capped.list("pods", ns) if p["metadata"]["labels"].get(naming.COMPONENT_LABEL)
                    == "worker"])
    try:
        _submit(capped, naming.DASKCLUSTER, ns, _cluster("fz-slow", 0), Tally())
        until(lambda: len(capped.list("pods", ns)) == 1 and any(
            _observed([g], "fz-slow-default") for g in capped.list("daskworkergroups", ns)),
            "the scheduler pod and the default group's first pass", 30)
        # From now on every pod create takes 4 s (in the second case, the extra group's adoption too).
        stalls.append(capped.local.call(capped.local.kube.fail_requests, rf"/namespaces/{ns}/pods$", status=None,
                                        delay=4.0, count=1000, method="POST"))
        if stalled != "pod creates":
            stalls.append(capped.local.call(capped.local.kube.fail_requests,
                                            rf"/namespaces/{ns}/daskworkergroups/fz-slow-more$", status=None,
                                            delay=4.0, count=1000, method="PATCH"))
        extra = {"apiVersion": naming.API_VERSION, "kind": naming.DASKWORKERGROUP,
                 "metadata": {"name": "fz-slow-more"},
                 "spec": {"cluster": "fz-slow", "worker": _cluster("x", 10**9)["spec"]["worker"]}}
        _submit(capped, naming.DASKWORKERGROUP, ns, extra, Tally())
        if len(stalls) == 1:
            until(lambda: posted() == CAP, "the extra group's creates, stalled", 30)
        else:
            until(lambda: capped.local.call(getattr, stalls[1], "count") < 1000, "the adoption, stalled", 30)
        # The default group now wants as many: it sorts first, so the cap is its own, but the room is taken.
        capped.kubectl("patch", "daskworkergroup", "fz-slow-default", "-n", ns, "--type=merge",
                       "-p", json.dumps({"spec": {"worker": {"replicas": 10**9}}}))
        until(lambda: _observed(capped.list("daskworkergroups", ns), "fz-slow-default"), "its pass", 30)
        assert posted() == (CAP if len(stalls) == 1 else 0), \
            "the default group created pods while the extra group's were in flight"
        assert workers() == 0, "the extra group's creates returned before the default group's pass: nothing tested"
        until(lambda: workers() == CAP, "the cap's pods, the default group's in the end", 60)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert workers() <= CAP, f"{workers()} worker pods for one cluster (cap {CAP})"
            time.sleep(0.2)
    finally:
        for stall in stalls:
            capped.local.call(setattr, stall, "count", 0)
