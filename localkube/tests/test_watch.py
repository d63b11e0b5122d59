"""Watch semantics, checked on the wire: resume, 410 Expired, bookmarks, selector exits, write echoes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest


class WatchStream:
    """A raw watch: events as dicts, each awaited with a deadline."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> WatchStream:
        self._resp = await self._session.get(self._url, timeout=aiohttp.ClientTimeout(total=None))
        assert self._resp.status == 200
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._resp is not None
        self._resp.close()

    async def next(self, deadline: float = 10) -> dict[str, Any]:
        assert self._resp is not None
        line = await asyncio.wait_for(self._resp.content.readline(), deadline)
        assert line, "the server ended the watch"
        return json.loads(line)

    async def ended(self, deadline: float = 10) -> bool:
        assert self._resp is not None
        return await asyncio.wait_for(self._resp.content.readline(), deadline) == b""


@pytest.fixture
async def http(kube) -> AsyncIterator[aiohttp.ClientSession]:  # type: ignore[no-untyped-def]
    api = kube.api
    async with aiohttp.ClientSession(base_url=api.server, headers=api.headers,
                                     connector=aiohttp.TCPConnector(ssl=api.context)) as session:
        yield session


async def _write(http: aiohttp.ClientSession, method: str, path: str, body: Any,
                 ctype: str = "application/json") -> dict[str, Any]:
    async with http.request(method, path, data=json.dumps(body), headers={"Content-Type": ctype}) as resp:
        data = await resp.json()
        assert resp.status in (200, 201), data
        return data


def _cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": {"k": "0"}}


async def test_every_write_is_echoed_with_the_returned_resource_version(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    async with WatchStream(http, f"{base}?watch=true") as watch:
        created = await _write(http, "POST", base, _cm("a"))
        patched = await _write(http, "PATCH", f"{base}/a", {"data": {"k": "1"}}, "application/merge-patch+json")
        async with http.delete(f"{base}/a") as resp:
            assert resp.status == 200
        events = [await watch.next() for _ in range(3)]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert events[1]["object"]["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    assert int(events[2]["object"]["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])


async def test_noop_patch_keeps_resource_version_and_emits_nothing(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    created = await _write(http, "POST", base, _cm("a"))
    async with WatchStream(http, f"{base}?watch=true&resourceVersion={created['metadata']['resourceVersion']}") as w:
        same = await _write(http, "PATCH", f"{base}/a", {"data": {"k": "0"}}, "application/merge-patch+json")
        assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        await _write(http, "PATCH", f"{base}/a", {"data": {"k": "2"}}, "application/merge-patch+json")
        event = await w.next()
    assert event["type"] == "MODIFIED" and event["object"]["data"]["k"] == "2"


async def test_resume_from_resource_version_replays_in_order(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    first = await _write(http, "POST", base, _cm("a"))
    for i in range(1, 4):
        await _write(http, "PATCH", f"{base}/a", {"data": {"k": str(i)}}, "application/merge-patch+json")
    async with WatchStream(http, f"{base}?watch=true&resourceVersion={first['metadata']['resourceVersion']}") as w:
        values = [(await w.next())["object"]["data"]["k"] for _ in range(3)]
    assert values == ["1", "2", "3"]


@pytest.mark.localkube_only
async def test_too_old_resource_version_is_an_in_stream_410(http, namespace, local_kube) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    first = await _write(http, "POST", base, _cm("a"))
    await _write(http, "PATCH", f"{base}/a", {"data": {"k": "1"}}, "application/merge-patch+json")
    await asyncio.to_thread(local_kube.call, local_kube.kube.store.compact)
    async with WatchStream(http, f"{base}?watch=true&resourceVersion={first['metadata']['resourceVersion']}") as w:
        event = await w.next()
        assert await w.ended()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert event["object"]["message"].startswith("too old resource version")


@pytest.mark.localkube_only
async def test_bookmarks_only_when_asked(http, namespace, local_kube) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    await asyncio.to_thread(local_kube.call, setattr, local_kube.kube.server, "bookmark_interval", 0.2)
    try:
        async with WatchStream(http, f"{base}?watch=true&allowWatchBookmarks=true") as with_marks, \
                WatchStream(http, f"{base}?watch=true") as without:
            mark = await with_marks.next()
            assert mark["type"] == "BOOKMARK"
            assert int(mark["object"]["metadata"]["resourceVersion"]) > 0
            await _write(http, "POST", base, _cm("after"))
            plain = await without.next()
            assert plain["type"] == "ADDED"  # the first thing it got was the write, not a bookmark
    finally:
        await asyncio.to_thread(local_kube.call, setattr, local_kube.kube.server, "bookmark_interval", 30.0)


async def test_object_leaving_a_label_selector_is_deleted_for_that_watcher(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    async with WatchStream(http, f"{base}?watch=true&labelSelector=app%3Dx") as w:
        await _write(http, "POST", base, _cm("a", {"app": "x"}))
        await _write(http, "POST", base, _cm("b", {"app": "y"}))
        await _write(http, "PATCH", f"{base}/a", {"metadata": {"labels": {"app": "z"}}},
                     "application/merge-patch+json")
        await _write(http, "PATCH", f"{base}/b", {"metadata": {"labels": {"app": "x"}}},
                     "application/merge-patch+json")
        events = [(e["type"], e["object"]["metadata"]["name"]) for e in [await w.next() for _ in range(3)]]
    assert events == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]


async def test_timeout_seconds_ends_the_stream(http, namespace) -> None:  # type: ignore[no-untyped-def]
    async with WatchStream(http, f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1") as w:
        assert await w.ended(deadline=10)


async def test_field_selector_watch_and_cluster_wide_watch(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    async with WatchStream(http, f"{base}?watch=true&fieldSelector=metadata.name%3Db") as by_name, \
            WatchStream(http, "/api/v1/configmaps?watch=true&labelSelector=cw%3D1") as cluster_wide:
        await _write(http, "POST", base, _cm("a", {"cw": "1"}))
        await _write(http, "POST", base, _cm("b"))
        assert (await by_name.next())["object"]["metadata"]["name"] == "b"
        event = await cluster_wide.next()
    assert event["object"]["metadata"]["namespace"] == namespace and event["object"]["metadata"]["name"] == "a"


async def test_send_initial_events_ends_with_a_marked_bookmark(http, namespace) -> None:  # type: ignore[no-untyped-def]
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    await _write(http, "POST", base, _cm("a"))
    await _write(http, "POST", base, _cm("b"))
    url = f"{base}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
    async with WatchStream(http, url) as w:
        first = [await w.next() for _ in range(3)]
        await _write(http, "POST", base, _cm("c"))
        live = await w.next()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first[:2]] == [("ADDED", "a"), ("ADDED", "b")]
    assert first[2]["type"] == "BOOKMARK"
    assert first[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "c")
