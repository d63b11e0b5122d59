"""The kr8s client that KubeCluster and legacy mode use, with a request timeout.

kr8s waits for an answer forever unless told otherwise, so one request on a connection that fell silent (a
partition, a dead load balancer) would hang `scale()` or `close()` for good. kr8s shares one client per thread,
event loop and kubeconfig with the user's own kr8s code, so a timeout already set on it is kept. (The operator has
its own setting, `kubernetes.operator.request-timeout-seconds`.)
"""

from __future__ import annotations

import kr8s.asyncio

from . import config


async def kube_api(kubeconfig: str | None = None) -> kr8s.asyncio.Api:
    """kr8s's client for `kubeconfig` (None: the default one), with `kubernetes.request-timeout` unless it has one."""
    api = await kr8s.asyncio.api(kubeconfig=kubeconfig)
    if api.timeout is None:
        api.timeout = float(config.get("request-timeout"))  # type: ignore[arg-type]
    return api
