"""The operator's cache of what its watches delivered: late events never undo what is known to be newer."""

from __future__ import annotations

import asyncio
from typing import Any

from dask_kube import naming
from dask_kube.operator.cache import Cache


def pod(name: str, rv: int, uid: str = "", labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
                                        "resourceVersion": str(rv), "labels": labels or {}, **meta},
            "spec": {"terminationGracePeriodSeconds": 5}}


def test_reads_by_name_and_by_selector() -> None:
    cache = Cache(["Pod"])
    cache.store(pod("a", 1, labels={naming.CLUSTER_LABEL: "c1"}))
    cache.store(pod("b", 2, labels={naming.CLUSTER_LABEL: "c2"}))
    assert cache.get("Pod", "ns", "a") is not None and cache.get("Pod", "other", "a") is None
    assert [p["metadata"]["name"] for p in cache.list("Pod", "ns", {naming.CLUSTER_LABEL: "c2"})] == ["b"]
    assert cache.holds("Pod") and not cache.holds("Secret")
    cache.store({"kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}})  # not watched: ignored
    assert cache.held() == {"ns": 2}


def test_creates_in_flight_are_counted_once_by_those_who_ask() -> None:
    cache = Cache(["Pod"])
    labels = {naming.CLUSTER_LABEL: "c"}
    body = {"kind": "Pod", "metadata": {"name": "a", "labels": labels}}
    with cache.creating([body], "ns"):
        assert cache.list("Pod", "ns", labels) == []  # plain readers see only what the server told
        assert cache.list("Pod", "ns", labels, creating=True) == [body]
        assert cache.list("Pod", "ns", {naming.CLUSTER_LABEL: "d"}, creating=True) == []
        assert cache.list("Pod", "other", labels, creating=True) == []
        cache.store(pod("a", 1, labels=labels))  # the answer, inside the block: counted once, as the stored object
        assert [p["metadata"]["uid"] for p in cache.list("Pod", "ns", labels, creating=True)] == ["uid-a"]
    with cache.creating([{"kind": "Pod", "metadata": {"name": "b", "labels": labels}}], "ns"):
        pass  # the create failed: nothing stays behind
    assert [p["metadata"]["name"] for p in cache.list("Pod", "ns", labels, creating=True)] == ["a"]
    with cache.creating([{"kind": "Secret", "metadata": {"name": "s"}}], "ns"):  # not watched: nothing to count
        assert cache.held() == {"ns": 1}


def test_a_plans_creates_stay_in_flight_until_the_plan_is_done() -> None:
    """act() registers a plan's creates before its patches and releases them once every create is answered:
    overlapping blocks (another plan's, or the same body's) never drop what another still holds."""
    cache = Cache(["Pod"])
    labels = {naming.CLUSTER_LABEL: "c"}
    first, second = ({"kind": "Pod", "metadata": {"name": n, "labels": labels}} for n in ("a", "b"))
    other = {"kind": "Pod", "metadata": {"name": "x", "labels": labels}}

    def in_flight() -> list[str]:
        return sorted(p["metadata"]["name"] for p in cache.list("Pod", "ns", labels, creating=True))

    with cache.creating([first, second], "ns"):
        assert in_flight() == ["a", "b"]
        with cache.creating([first], "ns"):
            cache.store(pod("a", 1, labels=labels))
        assert in_flight() == ["a", "b"]  # "a" now as stored
        with cache.creating([second], "ns"):
            pass  # its POST failed
        assert in_flight() == ["a"]
        with cache.creating([other], "ns"):  # another plan's create, meanwhile
            pass_through = in_flight()
    assert pass_through == ["a", "x"]
    assert in_flight() == ["a"]


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = Cache(["Pod"])
    cache.store(pod("a", 7, phase="new"))  # e.g. the answer to our own patch
    cache.observe("MODIFIED", pod("a", 6, phase="old"))  # the watch catching up late
    assert cache.get("Pod", "ns", "a")["metadata"]["phase"] == "new"  # type: ignore[index]
    cache.observe("MODIFIED", pod("a", 8, phase="newer"))
    assert cache.get("Pod", "ns", "a")["metadata"]["phase"] == "newer"  # type: ignore[index]
    # A new object of the same name (another uid) always replaces the old one, whatever the versions.
    cache.observe("ADDED", pod("a", 3, uid="second"))
    assert cache.get("Pod", "ns", "a")["metadata"]["uid"] == "second"  # type: ignore[index]


def test_a_deleted_object_is_not_brought_back_by_a_late_event() -> None:
    cache = Cache(["Pod"])
    cache.store(pod("a", 1))
    cache.observe("DELETED", pod("a", 2))
    cache.observe("MODIFIED", pod("a", 3))  # a late write answer, or an event processed out of order
    assert cache.get("Pod", "ns", "a") is None and cache.held() == {}
    cache.store(pod("a", 4, uid="new"))  # the same name, created again
    assert cache.get("Pod", "ns", "a") is not None


def test_our_own_delete_shows_at_once() -> None:
    cache = Cache(["Pod"])
    cache.store(pod("a", 1))
    cache.store(pod("b", 1))
    cache.deleting("Pod", "ns", "a", None)
    marked = cache.get("Pod", "ns", "a")
    assert marked is not None and marked["metadata"]["deletionGracePeriodSeconds"] == 5
    assert marked["metadata"]["deletionTimestamp"]
    cache.observe("ADDED", pod("a", 1))  # the create's own event, late: the mark stays
    assert "deletionTimestamp" in cache.get("Pod", "ns", "a")["metadata"]  # type: ignore[index]
    cache.deleting("Pod", "ns", "b", 0)  # at once: gone
    assert cache.get("Pod", "ns", "b") is None


def test_a_relist_drops_what_it_does_not_mention() -> None:
    async def relist() -> Cache:
        cache = Cache(["Pod"], relist_settle=0.05)
        cache.store(pod("kept", 1))
        cache.store(pod("deleted-while-disconnected", 1))
        cache.store({**pod("elsewhere", 1), "metadata": {**pod("elsewhere", 1)["metadata"], "namespace": "other"}})
        await asyncio.sleep(0.01)
        cache.observe(None, pod("kept", 1))  # a watch resumed past its history: the server lists again
        cache.observe(None, pod("new", 2))
        for _ in range(200):
            if cache.get("Pod", "ns", "deleted-while-disconnected") is None:
                break
            await asyncio.sleep(0.01)
        return cache

    cache = asyncio.run(relist())
    assert cache.get("Pod", "ns", "deleted-while-disconnected") is None
    assert cache.get("Pod", "ns", "kept") is not None and cache.get("Pod", "ns", "new") is not None
    assert cache.get("Pod", "other", "elsewhere") is not None  # another namespace's listing says nothing of it
