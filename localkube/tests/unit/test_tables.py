"""Server-side Table rendering for kubectl get, checked against kube-apiserver 1.32 printers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from localkube.apiserver.tables import evaluate_jsonpath, format_age, human_duration, render_table

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


def _ago(**kw: float) -> str:
    return (NOW - datetime.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(name: str, **extra: Any) -> dict:
    return {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": _ago(minutes=5), **extra}


def _table(group: str, plural: str, objects: list[dict], **kw: Any) -> dict:
    return render_table(group=group, plural=plural, objects=objects, now=NOW, **kw)


def _names(table: dict) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def _visible(table: dict) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]


def _cells(table: dict, row: int = 0) -> dict[str, Any]:
    return dict(zip(_names(table), table["rows"][row]["cells"], strict=True))


# --------------------------------------------------------------------------- ages


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (datetime.timedelta(seconds=-5), "<invalid>"),
        (datetime.timedelta(seconds=-1), "0s"),
        (datetime.timedelta(seconds=0), "0s"),
        (datetime.timedelta(seconds=7), "7s"),
        (datetime.timedelta(seconds=119), "119s"),
        (datetime.timedelta(seconds=120), "2m"),
        (datetime.timedelta(minutes=5, seconds=30), "5m30s"),
        (datetime.timedelta(minutes=9, seconds=59), "9m59s"),
        (datetime.timedelta(minutes=10, seconds=30), "10m"),
        (datetime.timedelta(minutes=179), "179m"),
        (datetime.timedelta(hours=3), "3h"),
        (datetime.timedelta(hours=3, minutes=20), "3h20m"),
        (datetime.timedelta(hours=7, minutes=59), "7h59m"),
        (datetime.timedelta(hours=8, minutes=30), "8h"),
        (datetime.timedelta(hours=47), "47h"),
        (datetime.timedelta(days=2), "2d"),
        (datetime.timedelta(days=2, hours=4), "2d4h"),
        (datetime.timedelta(days=7, hours=23), "7d23h"),
        (datetime.timedelta(days=8, hours=5), "8d"),
        (datetime.timedelta(days=729), "729d"),
        (datetime.timedelta(days=730), "2y"),
        (datetime.timedelta(days=800), "2y70d"),
        (datetime.timedelta(days=365 * 9), "9y"),
    ],
)
def test_human_duration_thresholds(delta: datetime.timedelta, text: str) -> None:
    assert human_duration(delta) == text


def test_format_age() -> None:
    assert format_age(None, NOW) == "<unknown>"
    assert format_age("", NOW) == "<unknown>"
    assert format_age(_ago(seconds=42), NOW) == "42s"
    assert format_age("2024-05-01T11:00:00+00:00", NOW.replace(tzinfo=None)) == "60m"


# --------------------------------------------------------------------------- jsonpath

DOC = {
    "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "dask"}},
    "spec": {"workers": [{"name": "w0", "n": 1}, {"name": "w1", "n": 2}], "empty": []},
    "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "False"}]},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".metadata.name", ["a"]),
        ("{.metadata.name}", ["a"]),
        ("$.metadata.name", ["a"]),
        (".spec.workers[0].name", ["w0"]),
        (".spec.workers[-1].name", ["w1"]),
        (".spec.workers[*].name", ["w0", "w1"]),
        (".spec.workers[0:1].n", [1]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type == 'Scheduled')].status", ["False"]),
        (".spec.workers[?(@.n > 1)].name", ["w1"]),
        (".spec.workers[?(@.missing)].name", []),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["dask"]),
        (".metadata['name']", ["a"]),
        (".spec.nothing.here", []),
        (".spec.workers[5]", []),
        ("..name", ["a", "w0", "w1"]),
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    assert evaluate_jsonpath(DOC, path) == expected


# --------------------------------------------------------------------------- pods


def _pod(name: str, *, statuses: list[dict], phase: str = "Running", **meta: Any) -> dict:
    return {
        "metadata": _meta(name, **meta),
        "spec": {"nodeName": "node-1", "containers": [{"name": s["name"], "image": "x"} for s in statuses]},
        "status": {
            "phase": phase,
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": statuses,
        },
    }


RUNNING = {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": _ago(minutes=5)}}}


def test_pod_columns_and_running_row() -> None:
    table = _table("", "pods", [_pod("web", statuses=[RUNNING])], resource_version="42")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert _names(table) == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert _visible(table) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert _cells(table) == {
        "Name": "web",
        "Ready": "1/1",
        "Status": "Running",
        "Restarts": "0",
        "Age": "5m",
        "IP": "10.0.0.5",
        "Node": "node-1",
        "Nominated Node": "<none>",
        "Readiness Gates": "<none>",
    }
    obj = table["rows"][0]["object"]
    assert obj["kind"] == "PartialObjectMetadata"
    assert obj["apiVersion"] == "meta.k8s.io/v1"
    assert obj["metadata"]["uid"] == "uid-web"


def test_crashloop_pod() -> None:
    status = {
        "name": "c",
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": _ago(seconds=5)}},
    }
    cells = _cells(_table("", "pods", [_pod("bad", statuses=[RUNNING | {"name": "ok"}, status])]))
    assert cells["Ready"] == "1/2"
    assert cells["Status"] == "CrashLoopBackOff"
    assert cells["Restarts"] == "3 (5s ago)"


def test_terminating_pod() -> None:
    pod = _pod("gone", statuses=[RUNNING], deletionTimestamp=_ago(seconds=1))
    assert _cells(_table("", "pods", [pod]))["Status"] == "Terminating"


@pytest.mark.parametrize(
    ("state", "phase", "expected"),
    [
        ({"waiting": {"reason": "ContainerCreating"}}, "Pending", "ContainerCreating"),
        ({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Succeeded", "Completed"),
        ({"terminated": {"exitCode": 2, "reason": "Error"}}, "Failed", "Error"),
        ({"terminated": {"exitCode": 137}}, "Failed", "ExitCode:137"),
    ],
)
def test_pod_status_reason(state: dict, phase: str, expected: str) -> None:
    pod = _pod("p", statuses=[{"name": "c", "ready": False, "restartCount": 0, "state": state}], phase=phase)
    cells = _cells(_table("", "pods", [pod]))
    assert cells["Status"] == expected
    assert cells["Ready"] == "0/1"


def test_finished_pod_is_not_terminating_and_has_row_condition() -> None:
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    pod = _pod("done", statuses=[{"name": "c", "state": state}], phase="Succeeded", deletionTimestamp=_ago(seconds=1))
    table = _table("", "pods", [pod])
    assert _cells(table)["Status"] == "Completed"
    assert table["rows"][0]["conditions"][0]["type"] == "Completed"


def test_pod_waiting_on_init_container() -> None:
    pod = _pod("init", statuses=[{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}], phase="Pending")
    pod["spec"]["initContainers"] = [{"name": "setup"}]
    pod["status"]["initContainerStatuses"] = [{"name": "setup", "state": {"running": {}}}]
    assert _cells(_table("", "pods", [pod]))["Status"] == "Init:0/1"


# --------------------------------------------------------------------------- services


def _svc(kind: str, ports: list[dict], **spec: Any) -> dict:
    return {
        "metadata": _meta("svc"),
        "spec": {
            "type": kind,
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": ports,
            "selector": {"app": "dask", "role": "scheduler"},
            **spec,
        },
        "status": spec.pop("status", {}),
    }


TCP = [{"port": 8786, "protocol": "TCP"}, {"port": 8787, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("svc", "cluster_ip", "external", "ports"),
    [
        pytest.param(_svc("ClusterIP", TCP), "10.96.0.10", "<none>", "8786/TCP,8787/TCP", id="cluster-ip"),
        pytest.param(
            _svc("NodePort", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]),
            "10.96.0.10",
            "<none>",
            "80:30080/TCP",
            id="node-port",
        ),
        pytest.param(_svc("LoadBalancer", TCP), "10.96.0.10", "<pending>", "8786/TCP,8787/TCP", id="lb-pending"),
        pytest.param(
            _svc("LoadBalancer", TCP)
            | {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "h"}]}}},
            "10.96.0.10",
            "1.2.3.4,h",
            "8786/TCP,8787/TCP",
            id="lb-ingress",
        ),
        pytest.param(
            _svc("ClusterIP", TCP, clusterIP="None", clusterIPs=["None"]),
            "None",
            "<none>",
            "8786/TCP,8787/TCP",
            id="headless",
        ),
        pytest.param(
            _svc("ExternalName", [], externalName="db.example.com", clusterIP="", clusterIPs=[]),
            "<none>",
            "db.example.com",
            "<none>",
            id="external-name",
        ),
    ],
)
def test_service_rows(svc: dict, cluster_ip: str, external: str, ports: str) -> None:
    table = _table("", "services", [svc])
    assert _names(table) == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    cells = _cells(table)
    assert cells["Type"] == svc["spec"]["type"]
    assert (cells["Cluster-IP"], cells["External-IP"], cells["Port(s)"]) == (cluster_ip, external, ports)
    assert cells["Selector"] == "app=dask,role=scheduler"


# --------------------------------------------------------------------------- workloads


def test_deployment_row() -> None:
    dep = {
        "metadata": _meta("sched"),
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "dask"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "template": {
                "spec": {
                    "containers": [
                        {"name": "s", "image": "ghcr.io/dask/dask:latest"},
                        {"name": "side", "image": "busybox"},
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    table = _table("apps", "deployments", [dep])
    assert _visible(table) == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert _cells(table) == {
        "Name": "sched",
        "Ready": "2/3",
        "Up-to-date": 3,
        "Available": 2,
        "Age": "5m",
        "Containers": "s,side",
        "Images": "ghcr.io/dask/dask:latest,busybox",
        "Selector": "app=dask,tier in (a,b)",
    }


_TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}


def test_statefulset_and_daemonset_rows() -> None:
    sts = {"metadata": _meta("db"), "spec": {"replicas": 3, "template": _TEMPLATE}, "status": {"readyReplicas": 2}}
    table = _table("apps", "statefulsets", [sts])
    assert _visible(table) == ["Name", "Ready", "Age"]
    assert _cells(table) == {"Name": "db", "Ready": "2/3", "Age": "5m", "Containers": "web", "Images": "nginx:1.27"}
    ds = {"metadata": _meta("agent"),
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"spec": {**_TEMPLATE["spec"], "nodeSelector": {"gpu": "yes", "a": "b"}}}},
          "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                     "updatedNumberScheduled": 2, "numberAvailable": 3}}
    table = _table("apps", "daemonsets", [ds])
    assert _visible(table) == ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector",
                               "Age"]
    assert list(_cells(table).values()) == ["agent", 4, 4, 3, 2, 3, "a=b,gpu=yes", "5m", "web", "nginx:1.27",
                                            "app=agent"]


@pytest.mark.parametrize(("spec", "status", "expected"), [
    ({"completions": 3}, {"succeeded": 1, "startTime": _ago(minutes=2), "active": 1}, ("Running", "1/3", "2m")),
    ({"parallelism": 4}, {"succeeded": 0, "startTime": _ago(seconds=30)}, ("Running", "0/1 of 4", "30s")),
    ({}, {"succeeded": 1, "startTime": _ago(minutes=3), "completionTime": _ago(minutes=2, seconds=50),
          "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]},
     ("Complete", "1/1", "10s")),
    ({"suspend": True}, {"conditions": [{"type": "Suspended", "status": "True"}]}, ("Suspended", "0/1", "")),
    ({"completions": 1}, {"failed": 7, "startTime": _ago(minutes=1),
                          "conditions": [{"type": "Failed", "status": "True"}]}, ("Failed", "0/1", "60s")),
])
def test_job_rows(spec: dict, status: dict, expected: tuple[str, str, str]) -> None:
    job = {"metadata": _meta("j"), "spec": {**spec, "template": _TEMPLATE}, "status": status}
    table = _table("batch", "jobs", [job])
    assert _visible(table) == ["Name", "Status", "Completions", "Duration", "Age"]
    cells = _cells(table)
    assert (cells["Status"], cells["Completions"], cells["Duration"]) == expected


def test_cronjob_and_controller_revision_rows() -> None:
    cron = {"metadata": _meta("nightly"),
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": _TEMPLATE}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": _ago(hours=2)}}
    table = _table("batch", "cronjobs", [cron])
    assert _visible(table) == ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]
    assert list(_cells(table).values())[:7] == ["nightly", "0 3 * * *", "<none>", False, 1, "120m", "5m"]
    revision = {"metadata": _meta("db-5d4f", ownerReferences=[{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                               "name": "db", "controller": True}]), "revision": 2}
    assert _cells(_table("apps", "controllerrevisions", [revision])) == {
        "Name": "db-5d4f", "Controller": "statefulset.apps/db", "Revision": 2, "Age": "5m"}


def test_replicaset_row_defaults_missing_status_to_zero() -> None:
    rs = {"metadata": _meta("rs"), "spec": {"replicas": 2, "template": {"spec": {"containers": []}}}}
    cells = _cells(_table("apps", "replicasets", [rs]))
    assert (cells["Desired"], cells["Current"], cells["Ready"]) == (2, 0, 0)


@pytest.mark.parametrize(
    ("group", "plural", "obj", "expected"),
    [
        (
            "",
            "namespaces",
            {"metadata": _meta("ns"), "status": {"phase": "Active"}},
            {"Name": "ns", "Status": "Active", "Age": "5m"},
        ),
        (
            "",
            "configmaps",
            {"metadata": _meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}},
            {"Name": "cm", "Data": 3, "Age": "5m"},
        ),
        (
            "",
            "secrets",
            {"metadata": _meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}},
            {"Name": "s", "Type": "kubernetes.io/tls", "Data": 2, "Age": "5m"},
        ),
        ("", "serviceaccounts", {"metadata": _meta("default")}, {"Name": "default", "Secrets": 0, "Age": "5m"}),
        (
            "coordination.k8s.io",
            "leases",
            {"metadata": _meta("l"), "spec": {"holderIdentity": "op-1"}},
            {"Name": "l", "Holder": "op-1", "Age": "5m"},
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            {"metadata": _meta("r")},
            {"Name": "r", "Created At": _ago(minutes=5)},
        ),
        (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            {"metadata": _meta("daskclusters.kubernetes.dask.org")},
            {"Name": "daskclusters.kubernetes.dask.org", "Created At": _ago(minutes=5)},
        ),
        (
            "policy",
            "poddisruptionbudgets",
            {"metadata": _meta("pdb"), "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}},
            {"Name": "pdb", "Min Available": "1", "Max Unavailable": "N/A", "Allowed Disruptions": 0, "Age": "5m"},
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            {"metadata": _meta("np"), "spec": {"podSelector": {}}},
            {"Name": "np", "Pod-Selector": "<none>", "Age": "5m"},
        ),
        (
            "",
            "endpoints",
            {
                "metadata": _meta("ep"),
                "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 8786}]}],
            },
            {"Name": "ep", "Endpoints": "10.0.0.0:8786,10.0.0.1:8786,10.0.0.2:8786 + 2 more...", "Age": "5m"},
        ),
        ("example.com", "widgets", {"metadata": _meta("w")}, {"Name": "w", "Age": "5m"}),
    ],
)
def test_simple_printers(group: str, plural: str, obj: dict, expected: dict) -> None:
    assert _cells(_table(group, plural, [obj])) == expected


def test_rolebinding_row() -> None:
    rb = {
        "metadata": _meta("rb"),
        "roleRef": {"kind": "Role", "name": "dask"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ns"}, {"kind": "User", "name": "jane"}],
    }
    cells = _cells(_table("rbac.authorization.k8s.io", "rolebindings", [rb]))
    assert (cells["Role"], cells["Users"], cells["ServiceAccounts"]) == ("Role/dask", "jane", "ns:op")


def test_node_row() -> None:
    node = {
        "metadata": _meta("n1", labels={"node-role.kubernetes.io/control-plane": ""}),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "LocalKube"},
        },
    }
    cells = _cells(_table("", "nodes", [node]))
    assert cells["Status"] == "Ready,SchedulingDisabled"
    assert cells["Roles"] == "control-plane"
    assert (cells["Version"], cells["Internal-IP"], cells["External-IP"]) == ("v1.32.0", "172.18.0.2", "<none>")
    assert cells["Kernel-Version"] == "<unknown>"


def test_event_row() -> None:
    event = {
        "metadata": _meta("web.17a"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
        "reason": "Started",
        "message": "Started container c \n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": _ago(minutes=3),
        "lastTimestamp": _ago(seconds=30),
        "count": 2,
    }
    table = _table("", "events", [event])
    assert _visible(table) == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert _cells(table) == {
        "Last Seen": "30s",
        "Type": "Normal",
        "Reason": "Started",
        "Object": "pod/web",
        "Subobject": "spec.containers{c}",
        "Source": "kubelet, node-1",
        "Message": "Started container c",
        "First Seen": "3m",
        "Count": 2,
        "Name": "web.17a",
    }


# --------------------------------------------------------------------------- custom resources

PRINTER_COLUMNS = [
    {"name": "Workers", "type": "integer", "jsonPath": ".spec.worker.replicas"},
    {"name": "Status", "type": "string", "jsonPath": ".status.phase", "description": "Cluster phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Load", "type": "number", "jsonPath": ".status.load", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def test_custom_resource_printer_columns() -> None:
    cr = {
        "metadata": _meta("simple"),
        "spec": {"worker": {"replicas": 2.0}},
        "status": {"phase": "Running", "load": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    missing = {"metadata": _meta("new"), "spec": {}}
    table = _table("kubernetes.dask.org", "daskclusters", [cr, missing], printer_columns=PRINTER_COLUMNS)
    assert _names(table) == ["Name", "Workers", "Status", "Ready", "Load", "Age"]
    assert table["columnDefinitions"][1] == {
        "name": "Workers",
        "type": "integer",
        "format": "",
        "description": "",
        "priority": 0,
    }
    assert table["columnDefinitions"][4]["priority"] == 1
    assert _cells(table) == {
        "Name": "simple",
        "Workers": 2,
        "Status": "Running",
        "Ready": "True",
        "Load": 1.0,
        "Age": "5m",
    }
    assert _cells(table, 1) == {
        "Name": "new",
        "Workers": None,
        "Status": None,
        "Ready": None,
        "Load": None,
        "Age": "5m",
    }


@pytest.mark.parametrize("columns", [None, []])
def test_custom_resource_without_columns_gets_name_and_age(columns: list | None) -> None:
    table = _table("kubernetes.dask.org", "daskclusters", [{"metadata": _meta("c")}], printer_columns=columns)
    assert _names(table) == ["Name", "Age"]
    assert _cells(table) == {"Name": "c", "Age": "5m"}


def test_custom_string_column_renders_non_strings() -> None:
    cols = [
        {"name": "Spec", "type": "string", "jsonPath": ".spec"},
        {"name": "On", "type": "string", "jsonPath": ".spec.on"},
    ]
    table = _table("g.io", "things", [{"metadata": _meta("t"), "spec": {"on": True}}], printer_columns=cols)
    assert _cells(table) == {"Name": "t", "Spec": '{"on":true}', "On": "true"}


def test_custom_date_column_invalid_value() -> None:
    cols = [{"name": "Since", "type": "date", "jsonPath": ".status.since"}]
    table = _table("g.io", "things", [{"metadata": _meta("t"), "status": {"since": "soon"}}], printer_columns=cols)
    assert _cells(table)["Since"] == "<invalid>"
