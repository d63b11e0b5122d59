"""core/v1 Events about an object, as controllers record them (`kubectl describe` and `kubectl events` show them)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from localkube.apiserver.core import ApiCore
from localkube.apiserver.errors import ApiError

EVENT_KEY = ("", "events")


def record(core: ApiCore, obj: Mapping[str, Any], reason: str, message: str, component: str, *,
           warning: bool = False) -> None:
    """One Event with `obj` as its involvedObject; a namespace being deleted refuses it, which is fine."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    now = core.now()
    try:
        core.create(core.kind_of(EVENT_KEY), namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {"kind": obj.get("kind", ""), "namespace": namespace, "name": meta["name"],
                               "uid": meta.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
                               "resourceVersion": meta.get("resourceVersion", "")},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": component,
        })
    except ApiError:
        pass
