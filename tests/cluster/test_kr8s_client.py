"""The product's kr8s clients against a real API server: a refused request affects no other request in flight,
and changed credentials are still picked up (kubernetes_api.guard_reauthentication)."""

from __future__ import annotations

import asyncio
import collections
import shutil
from typing import Any

import kr8s
from kr8s.asyncio.objects import Pod

from dask_kube import kubernetes_api


async def _outcome(api: kr8s.asyncio.Api, namespace: str) -> str:
    try:
        await kubernetes_api.list_objects(Pod, namespace, api)
    except kr8s.ServerError as err:
        return f"ServerError {kubernetes_api.status_code(err)}"
    except Exception as err:  # the test counts what else escapes
        return type(err).__name__
    return "ok"


async def test_concurrent_refusals_each_get_the_servers_answer(kube: Any, namespace: str, kubectl: Any) -> None:
    # Each 403 makes kr8s re-read its credentials; unguarded, some of these 40 failed with ReadError or
    # UnsupportedProtocol because another request's re-read closed or blanked the shared session.
    kubectl("create", "serviceaccount", "nobody")
    config = kube.service_account_kubeconfig(namespace, "nobody")
    async with kubernetes_api.private_client(str(config)) as api:
        outcomes = collections.Counter(await asyncio.gather(*(_outcome(api, namespace) for _ in range(40))))
    assert outcomes == {"ServerError 403": 40}


async def test_changed_credentials_are_picked_up_after_a_refusal(kube: Any, namespace: str, kubectl: Any,
                                                                 tmp_path: Any) -> None:
    kubectl("create", "serviceaccount", "nobody")
    config = kube.service_account_kubeconfig(namespace, "nobody", tmp_path / "kubeconfig")
    async with kubernetes_api.private_client(str(config)) as api:
        assert await _outcome(api, namespace) == "ServerError 403"
        shutil.copyfile(kube.kubeconfig, config)  # the admin's credentials now, as a rotated token would arrive
        assert await _outcome(api, namespace) == "ok"
