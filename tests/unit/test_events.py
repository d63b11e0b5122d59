"""What makes two Events the same one (and so one object with a count), with no server."""

from __future__ import annotations

from typing import Any

from dask_kube.operator import events

CLUSTER: dict[str, Any] = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                           "metadata": {"name": "c", "namespace": "ns", "uid": "u1"}}


def _renamed(**meta: str) -> dict[str, Any]:
    return {**CLUSTER, "metadata": {**CLUSTER["metadata"], **meta}}


def _body(involved: dict[str, Any] = CLUSTER, reason: str = "ScaledUp", message: str = "m", warning: bool = False,
          now: str = "t0", instance: str = "a") -> dict[str, Any]:
    return events.event_body(involved, reason, message, warning=warning, now=now, instance=instance)


def test_the_name_depends_on_what_makes_an_event_the_same_one() -> None:
    name = _body()["metadata"]["name"]
    assert name.startswith("c.") and len(name) == len("c.") + events.DIGEST_LENGTH
    assert _body(now="t1", instance="b")["metadata"]["name"] == name  # when, and which replica: the same Event
    others = [_body(reason="ScaledDown"), _body(message="n"), _body(warning=True), _body(_renamed(uid="u2"))]
    assert all(body["metadata"]["name"] != name for body in others)


def test_long_names_and_messages_stay_within_the_api_servers_limits() -> None:
    body = _body(_renamed(name="x" * 253), message="y" * 5000)
    assert len(body["metadata"]["name"]) == events.NAME_LIMIT
    assert len(body["message"]) == events.MAX_MESSAGE


def test_a_repeat_counts_one_more_only_on_the_version_it_read() -> None:
    current = {"metadata": {"resourceVersion": "42"}, "count": 4}
    assert events.repeat_patch(current, "t9", "b") == {"metadata": {"resourceVersion": "42"}, "count": 5,
                                                       "lastTimestamp": "t9", "reportingInstance": "b"}
    assert events.repeat_patch({"metadata": {"resourceVersion": "1"}}, "t", "b")["count"] == 2
