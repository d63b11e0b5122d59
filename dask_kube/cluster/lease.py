"""The client's side of a cluster's lease: while this process holds the cluster, it renews the cluster's Lease.

The operator deletes a leased cluster once nobody has renewed its Lease for its timeout (`operator/client_leases.py`),
so a client that dies without closing (SIGKILL, an OOM-killed kernel, a closed laptop) leaves no cluster running.
Renewal runs on the client's event loop; a renewal that fails (an API outage) is logged and tried again sooner, and
only a whole timeout of failures loses the cluster.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import httpx
import kr8s
import kr8s.asyncio

from .. import kubernetes_api, naming, specs
from ..kinds import Lease

logger = logging.getLogger(__name__)
# Renew this many times per timeout, so that one or two lost renewals cost nothing.
RENEWALS_PER_TIMEOUT = 3
# After a failed renewal, try again this soon (or at the next renewal, if sooner).
RETRY_SECONDS = 5.0


def microtime(when: dt.datetime | None = None) -> str:
    """A Kubernetes MicroTime, as a Lease's times are written."""
    return (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def holder_identity() -> str:
    """Who renews: user, host and process, for `kubectl get lease`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER variable, as in some containers
        user = "user"
    return f"{user}@{socket.gethostname()}/{os.getpid()}"


class LeaseHolder:
    """Renews one cluster's Lease (creating it when missing) every timeout / RENEWALS_PER_TIMEOUT seconds."""

    def __init__(self, api: kr8s.asyncio.Api, cluster: Mapping[str, Any], seconds: int) -> None:
        self.api, self.cluster, self.seconds = api, cluster, seconds
        self.name = naming.client_lease_name(cluster["metadata"]["name"])
        self.holder = holder_identity()

    async def renew(self) -> None:
        """One renewal. Raises PermissionError when the Role lacks leases (docs/rbac.md): a cluster that cannot
        be renewed would be deleted under its client."""
        now = microtime()
        body = specs.client_lease(self.cluster, self.seconds, self.holder, now)
        lease = Lease(body, namespace=self.cluster["metadata"]["namespace"], api=self.api)
        try:
            try:
                # The owner too: a Lease left by an earlier cluster of this name becomes this one's.
                await lease.patch({"metadata": {"ownerReferences": body["metadata"]["ownerReferences"]},
                                   "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.seconds,
                                            "renewTime": now}})
            except kr8s.NotFoundError:
                await lease.create()
        except kr8s.ServerError as err:
            if kubernetes_api.is_conflict(err):
                return  # another client of the cluster created it a moment ago: renewed
            if kubernetes_api.is_forbidden(err):
                raise PermissionError(f"cannot renew Lease {lease.namespace}/{self.name} of cluster "
                                      f"{self.cluster['metadata']['name']}: {err} (a KubeCluster client needs get, "
                                      "create and patch on coordination.k8s.io leases: docs/rbac.md)") from None
            raise

    async def run(self) -> None:
        """Renew until cancelled."""
        interval = self.seconds / RENEWALS_PER_TIMEOUT
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                await self.renew()
                delay = interval
            except (kr8s.ServerError, httpx.HTTPError, OSError) as err:  # an outage: the next try may work
                delay = min(interval, RETRY_SECONDS)
                logger.warning("could not renew Lease %s (the operator deletes the cluster after %ss without a "
                               "renewal): %s", self.name, self.seconds, err)
