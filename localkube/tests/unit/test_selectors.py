"""Label and field selector parsing and matching, checked against Kubernetes semantics."""

from __future__ import annotations

from typing import Any

import pytest

from localkube.apiserver.selectors import (
    LabelSelector,
    SelectorError,
    label_selector_from_map,
    label_selector_from_spec,
    label_selector_to_string,
    parse_field_selector,
    parse_label_selector,
    supported_field_labels,
)

LABELS = {"app": "web", "tier": "front", "version": "3"}

# --------------------------------------------------------------------------- label selector strings


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", LABELS, True),
        ("app==web", LABELS, True),
        ("app=db", LABELS, False),
        ("app!=db", LABELS, True),
        ("app!=web", LABELS, False),
        ("missing!=x", LABELS, True),
        ("app", LABELS, True),
        ("missing", LABELS, False),
        ("!missing", LABELS, True),
        ("!app", LABELS, False),
        ("app in (web,db)", LABELS, True),
        ("app in (db)", LABELS, False),
        ("missing in (x)", LABELS, False),
        ("app notin (db,cache)", LABELS, True),
        ("app notin (web)", LABELS, False),
        ("missing notin (x)", LABELS, True),
        ("app=web,tier=front", LABELS, True),
        ("app=web,tier=back", LABELS, False),
        ("  app = web ,  tier in ( front , back )  ", LABELS, True),
        ("app in(web),!missing", LABELS, True),
        ("version>2", LABELS, True),
        ("version<3", LABELS, False),
        ("app>1", LABELS, False),
        ("app=", {"app": ""}, True),
        ("app=", LABELS, False),
        ("app in ()", {"app": ""}, True),
        ("example.com/role=x", {"example.com/role": "x"}, True),
        ("app=web", None, False),
        ("!app", None, True),
        ("", LABELS, True),
        ("", None, True),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("tier=front,app=web", "app=web,tier=front"),
        ("app == web", "app==web"),
        ("x notin (b, a)", "x notin (a,b)"),
        ("x in (b,a,b)", "x in (a,b)"),
        ("!x,y", "!x,y"),
        ("k in (,a)", "k in (,a)"),
        ("n>5", "n>5"),
    ],
    ids=["sorted-by-key", "double-equals", "notin-sorted", "in-dedup", "exists", "empty-member", "gt"],
)
def test_label_selector_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical
    assert canonical in repr(parse_label_selector(text))


@pytest.mark.parametrize("text", [None, "", "   "], ids=["none", "empty", "blank"])
def test_empty_label_selector_is_empty(text: str | None) -> None:
    selector = parse_label_selector(text)
    assert selector.empty
    assert str(selector) == ""


def test_label_selector_value_semantics() -> None:
    assert parse_label_selector("a=1,b=2") == parse_label_selector("b=2, a=1")
    assert hash(parse_label_selector("a=1")) == hash(parse_label_selector("a = 1"))
    assert not parse_label_selector("a").empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
        ("app=(", "unable to parse requirement: found '(', expected: identifier"),
        ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app in a", "unable to parse requirement: found 'a' expected: '('"),
        ("app=web,", "found '', expected: identifier after ','"),
        ("app=web x", "found 'x', expected: ',' or 'end of string'"),
        ("!app=web", "found '=', expected: ',' or 'end of string'"),
        (",app", "found ',', expected: !, identifier, or 'end of string'"),
        ("=x", "found '=', expected: !, identifier, or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
    ],
    ids=[
        "missing-operator",
        "paren-as-value",
        "unclosed-set",
        "set-without-paren",
        "trailing-comma",
        "junk-after-term",
        "not-exists-with-value",
        "leading-comma",
        "missing-key",
        "bare-bang",
    ],
)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bad key=x", None),
        ("-app=x", 'unable to parse requirement: <nil>: Invalid value: "-app": name part must consist of'),
        ("a/b/c=x", "a qualified name must consist of"),
        ("/app=x", "prefix part must be non-empty"),
        ("Example.com/app=x", "prefix part a lowercase RFC 1123 subdomain"),
        ("a" * 64 + "=x", "name part must be no more than 63 characters"),
        ("app=-x", 'values[0][app]: Invalid value: "-x": a valid label must be an empty string'),
        ("app=" + "v" * 64, "must be no more than 63 characters"),
        ("app in (ok,b@d)", 'Invalid value: "b@d"'),
        ("n>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ],
    ids=[
        "space-in-key",
        "key-starts-with-dash",
        "two-slashes",
        "empty-prefix",
        "uppercase-prefix",
        "long-name",
        "value-starts-with-dash",
        "long-value",
        "bad-set-member",
        "gt-not-integer",
    ],
)
def test_label_selector_validation_errors(text: str, fragment: str | None) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    if fragment is not None:
        assert fragment in str(info.value)


def test_validation_message_matches_apimachinery_layout() -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector("-a")
    assert str(info.value) == (
        'unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )


def test_selector_error_is_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


# --------------------------------------------------------------------------- metav1.LabelSelector and maps


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        (None, LABELS, False),
        (None, {}, False),
        ({}, LABELS, True),
        ({}, None, True),
        ({"matchLabels": {}}, LABELS, True),
        ({"matchLabels": {"app": "web"}}, LABELS, True),
        ({"matchLabels": {"app": "db"}}, LABELS, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}, LABELS, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, LABELS, False),
        ({"matchExpressions": [{"key": "zz", "operator": "NotIn", "values": ["web"]}]}, LABELS, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, LABELS, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, LABELS, False),
        (
            {
                "matchLabels": {"tier": "front"},
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}],
            },
            LABELS,
            False,
        ),
    ],
    ids=[
        "nil-matches-nothing",
        "nil-empty-labels",
        "empty-matches-everything",
        "empty-none-labels",
        "empty-matchlabels",
        "matchlabels-hit",
        "matchlabels-miss",
        "in-hit",
        "notin-miss",
        "notin-missing-key",
        "exists",
        "doesnotexist",
        "labels-and-expressions-anded",
    ],
)
def test_label_selector_from_spec(spec: dict[str, Any] | None, labels: dict[str, str] | None, expected: bool) -> None:
    assert label_selector_from_spec(spec).matches(labels) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, '"Equals" is not a valid'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "values set must be empty"),
        ({"matchLabels": {"bad key": "x"}}, 'key: Invalid value: "bad key"'),
    ],
    ids=["unknown-operator", "in-without-values", "exists-with-values", "bad-key"],
)
def test_label_selector_from_spec_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as info:
        label_selector_from_spec(spec)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("mapping", "labels", "expected"),
    [
        ({"app": "web"}, LABELS, True),
        ({"app": "web", "tier": "back"}, LABELS, False),
        ({}, LABELS, False),
        (None, LABELS, False),
    ],
    ids=["match", "partial", "empty-map-selects-nothing", "none-selects-nothing"],
)
def test_label_selector_from_map(mapping: dict[str, str] | None, labels: dict[str, str], expected: bool) -> None:
    assert label_selector_from_map(mapping).matches(labels) is expected


def test_nil_selectors_are_not_empty() -> None:
    assert not label_selector_from_spec(None).empty
    assert not label_selector_from_map({}).empty
    assert label_selector_from_spec({}).empty
    assert isinstance(label_selector_from_spec(None), LabelSelector)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"matchLabels": {"app": "nginx"}}, "app=nginx"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["b", "a"]}],
            },
            "app=x,env notin (a,b)",
        ),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, "!gpu"),
        ({"app": "nginx", "role": "web"}, "app=nginx,role=web"),
        ({}, ""),
        (None, ""),
    ],
    ids=["spec", "spec-sorted", "spec-expressions", "spec-doesnotexist", "plain-map", "empty", "none"],
)
def test_label_selector_to_string(value: dict[str, Any] | None, expected: str) -> None:
    assert label_selector_to_string(value) == expected


# --------------------------------------------------------------------------- field selectors

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]},
}
POD_FIELDS = supported_field_labels("", "pods")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.name=web-2", False),
        ("metadata.namespace=default", True),
        ("status.phase=Running,spec.nodeName=node-a", True),
        ("status.phase=Running,spec.nodeName=node-b", False),
        ("status.phase!=Pending", True),
        ("spec.hostNetwork=true", True),
        ("spec.schedulerName=", True),
        ("spec.serviceAccountName!=", False),
        ("status.nominatedNodeName=", True),
        ("status.podIP=10.0.0.5", True),
        ("status.podIPs=10.0.0.5", False),
        ("spec.host=node-a", True),
        ("metadata.name=web-1,", True),
        ("metadata.name=web-1,metadata.name=web-1", True),
        (",,metadata.name=web-1,,", True),
        ("", True),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_pod_field_selector(text: str, expected: bool) -> None:
    assert parse_field_selector(text, POD_FIELDS).matches(POD) is expected


def test_bool_field_defaults_to_false() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {}}
    assert parse_field_selector("spec.hostNetwork=false", POD_FIELDS).matches(pod)
    node = {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}
    nodes = supported_field_labels("", "nodes")
    assert parse_field_selector("spec.unschedulable=true", nodes).matches(node)
    assert parse_field_selector("spec.unschedulable=false", nodes).matches({"metadata": {"name": "n"}})


@pytest.mark.parametrize(
    ("group", "plural", "obj", "text", "expected"),
    [
        ("", "events", {"involvedObject": {"kind": "Pod", "name": "p"}}, "involvedObject.kind=Pod", True),
        ("", "events", {"involvedObject": {"kind": "Pod", "name": "p"}}, "involvedObject.name=q", False),
        ("", "events", {"source": {"component": "kubelet"}}, "source=kubelet", True),
        ("", "events", {"reportingComponent": "ctrl"}, "reportingComponent=ctrl", True),
        ("", "events", {"type": "Warning", "reason": "Failed"}, "type=Warning,reason=Failed", True),
        ("events.k8s.io", "events", {"regarding": {"uid": "u1"}}, "regarding.uid=u1", True),
        ("events.k8s.io", "events", {"reportingController": "c"}, "reportingController=c", True),
        ("", "namespaces", {"status": {"phase": "Active"}}, "status.phase=Active", True),
        ("", "secrets", {"type": "Opaque"}, "type=Opaque", True),
        ("apps", "replicasets", {"status": {"replicas": 3}}, "status.replicas=3", True),
        ("apps", "replicasets", {"status": {}}, "status.replicas=0", True),
        ("", "services", {"spec": {"type": "ClusterIP", "clusterIP": "None"}}, "spec.clusterIP=None", True),
        ("batch", "jobs", {"status": {"succeeded": 1}}, "status.successful=1", True),
        ("batch", "jobs", {"status": {}}, "status.successful=0", True),
        ("", "nodes", {"metadata": {"name": "n"}}, "metadata.namespace=", True),
    ],
    ids=[
        "event-kind",
        "event-name-miss",
        "event-source-component",
        "event-reporting-component",
        "event-type-reason",
        "events-v1-regarding",
        "events-v1-reporting-controller",
        "namespace-phase",
        "secret-type",
        "rs-replicas",
        "rs-replicas-default",
        "service-clusterip",
        "job-successful",
        "job-successful-default",
        "cluster-scoped-namespace",
    ],
)
def test_kind_specific_fields(group: str, plural: str, obj: dict[str, Any], text: str, expected: bool) -> None:
    assert parse_field_selector(text, supported_field_labels(group, plural)).matches(obj) is expected


@pytest.mark.parametrize(
    ("group", "plural", "present", "absent"),
    [
        ("", "pods", {"metadata.name", "metadata.namespace", "spec.nodeName", "status.podIPs"}, {"reason"}),
        ("", "configmaps", {"metadata.name", "metadata.namespace"}, {"spec.nodeName", "type"}),
        ("", "events", {"involvedObject.uid", "source", "type", "reportingComponent"}, {"regarding.uid"}),
        ("events.k8s.io", "events", {"regarding.fieldPath", "reportingController"}, {"involvedObject.uid"}),
        ("dask.org", "daskclusters", {"metadata.name"}, {"spec.workers"}),
    ],
    ids=["pods", "configmaps", "core-events", "events-v1", "custom"],
)
def test_supported_field_labels(group: str, plural: str, present: set[str], absent: set[str]) -> None:
    labels = supported_field_labels(group, plural)
    assert present <= labels
    assert not absent & labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec.foo=x", "field label not supported: spec.foo"),
        ("metadata.name=a,spec.foo=x", "field label not supported: spec.foo"),
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
        ("metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
    ],
    ids=["unsupported", "unsupported-second", "no-operator", "unescaped-equals", "bad-escape", "trailing-slash"],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text, POD_FIELDS)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (r"metadata.name=a\,b", "a,b", True),
        (r"metadata.name=a\=b", "a=b", True),
        (r"metadata.name=a\\b", "a\\b", True),
        (r"metadata.name=a\,b", "a", False),
    ],
    ids=["escaped-comma", "escaped-equals", "escaped-backslash", "escaped-comma-is-not-a-separator"],
)
def test_field_selector_escapes(text: str, name: str, expected: bool) -> None:
    assert parse_field_selector(text, POD_FIELDS).matches({"metadata": {"name": name}}) is expected


def test_field_selector_custom_resource_fields() -> None:
    supported = supported_field_labels("dask.org", "daskclusters") | {"spec.color"}
    selector = parse_field_selector("spec.color=blue", supported)
    assert selector.matches({"spec": {"color": "blue"}})
    assert not selector.matches({"spec": {"color": "red"}})
    assert not selector.matches({"spec": {}})


def test_field_selector_exact_value_and_empty() -> None:
    selector = parse_field_selector("metadata.name=web-1,status.phase!=Failed", POD_FIELDS)
    assert selector.exact_value("metadata.name") == "web-1"
    assert selector.exact_value("status.phase") is None
    assert not selector.empty
    assert parse_field_selector(None, POD_FIELDS).empty
    assert parse_field_selector(",", POD_FIELDS).empty
