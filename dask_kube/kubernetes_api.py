"""The Kubernetes API as the product uses it: kr8s clients with a request timeout, reads that say "not found" at
once, pod logs, and the one place where what the API server answered becomes dask_kube's meaning.

kr8s waits for an answer forever unless told otherwise, so one request on a connection that fell silent (a
partition, a dead load balancer) would hang `scale()` or `close()` for good; every client made here has a timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kr8s
import kr8s.asyncio
from kr8s.asyncio.objects import APIObject, Pod

from . import config, naming
from .errors import ClusterNotFoundError, CRDsNotInstalledError, DaskKubeError, ForwardDenied, KubeconfigError

T = TypeVar("T", bound=APIObject)

# Answers that mean "not now" rather than "no": too many requests, and the server or a proxy in front of it failing.
OUTAGE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers that mean "never, as written": the body is malformed (400) or invalid (422).
REJECTION_STATUSES = frozenset({400, 422})


async def client(kubeconfig: str | None = None) -> kr8s.asyncio.Api:
    """kr8s's shared client for `kubeconfig` (None: the default one), with `kubernetes.request-timeout` unless it
    has a timeout already: kr8s shares one client per thread, loop and kubeconfig with the user's own kr8s code."""
    api = guard_reauthentication(await kr8s.asyncio.api(kubeconfig=kubeconfig))
    if api.timeout is None:
        api.timeout = config.get_float("request-timeout")
    return api


def guard_reauthentication(api: kr8s.asyncio.Api) -> kr8s.asyncio.Api:
    """Keep kr8s from failing requests in flight when another request is refused.

    kr8s 0.20 answers every 401 and 403 (a namespace being deleted, a missing RBAC rule) by re-reading its
    credentials and rebuilding its HTTP session. Concurrent requests on the same client then fail for nothing:
    the old session is closed under them (httpx ReadError, which reads as "the API server could not be reached"),
    and a session rebuilt while the server's address is blanked for the re-read has no address (httpx
    UnsupportedProtocol). Here the session is rebuilt only when what it is built from changed (the server, the
    token, the certificate files' contents), which a 403 never changes, and a session without an address is
    dropped before any request can use it. Idempotent: kr8s shares its clients."""
    if getattr(api, "_dask_kube_guarded", False):
        return api
    rebuild = api._create_session
    built_from: list[tuple[object, ...]] = []

    async def create_session() -> None:
        while True:
            # kr8s builds the TLS context under its credentials lock: this waits out a re-read in progress.
            await api.auth.ssl_context()  # type: ignore[no-untyped-call]
            wanted = _credentials(api.auth)
            session = api._session
            if session is not None and not session.is_closed and built_from == [wanted]:
                return
            await rebuild()
            session = api._session
            if session is None or session.base_url.scheme in ("http", "https"):
                built_from[:] = [_credentials(api.auth)]
                return
            api._session = None  # in the same loop pass it was made: no request ever saw it
            await session.aclose()

    api._create_session = create_session  # type: ignore[method-assign]
    api._dask_kube_guarded = True  # type: ignore[attr-defined]
    return api


def _credentials(auth: Any) -> tuple[object, ...]:
    """What kr8s builds a session from. Certificates by content: kr8s writes inline ones to a new file each time."""
    def content(path: object) -> bytes | None:
        try:
            return Path(str(path)).read_bytes() if path else None
        except OSError:
            return None
    return (auth.server, auth.token, auth.tls_server_name, auth.proxy,
            content(auth.client_cert_file), content(auth.client_key_file), content(auth.server_ca_file))


@contextlib.asynccontextmanager
async def private_client(kubeconfig: str | None = None, context: str | None = None
                         ) -> AsyncIterator[kr8s.asyncio.Api]:
    """A kr8s client of its own for the running event loop, closed on exit.

    kr8s's `api()` factory caches clients by thread and event-loop id; a short-lived loop (each CLI command, each
    dask-ctl call) may get the id of one that is closed, and with it a dead HTTP session. A private client avoids
    that, and `kubeconfig`/`context` choose the cluster as kubectl's flags do.
    """
    api = guard_reauthentication(kr8s.asyncio.Api(bypass_factory=True, kubeconfig=kubeconfig, context=context))
    try:
        await api
    except ValueError as err:  # kr8s: "Unable to find valid credentials", or an unknown context
        where = f"in {kubeconfig}" if kubeconfig else "(KUBECONFIG, ~/.kube/config or a service account)"
        raise KubeconfigError(f"no usable Kubernetes credentials {where}: {err}") from None
    except (httpx.TransportError, OSError) as err:
        raise KubeconfigError(f"the Kubernetes API server at {api.auth.server} does not answer: {err}") from None
    if api.timeout is None:
        api.timeout = config.get_float("request-timeout")
    try:
        yield api
    finally:
        session = getattr(api, "_session", None)
        if session is not None:
            with contextlib.suppress(RuntimeError, httpx.HTTPError):
                await session.aclose()


def ref(cls: type[T], name: str, namespace: str | None, api: kr8s.asyncio.Api) -> T:
    """An object of that name, not read yet."""
    return cls({"metadata": {"name": name}}, namespace=namespace, api=api)


async def get(cls: type[T], name: str, namespace: str | None, api: kr8s.asyncio.Api) -> T | None:
    """The object, or None; one GET (kr8s's own `get` retries a missing object for seconds)."""
    obj = ref(cls, name, namespace, api)
    try:
        await obj.refresh()
    except kr8s.NotFoundError:
        return None
    return obj


async def list_objects(cls: type[T], namespace: str | None, api: kr8s.asyncio.Api,
                       selector: Mapping[str, str] | None = None) -> list[T]:
    """Every object of that kind (in `namespace`, or `kr8s.ALL`) whose labels match `selector`."""
    found = api.async_get(cls, namespace=namespace, label_selector=dict(selector) if selector else None)
    return [obj async for obj in found if isinstance(obj, cls)]


async def delete(obj: APIObject, propagation_policy: str | None = None, grace_period: int | None = None) -> bool:
    """Delete, tolerating "not found"; whether it existed. `grace_period=0` removes a pod at once, even one whose
    node does not answer (kr8s drops a zero grace period unless it is asked to force)."""
    try:
        if grace_period == 0:
            await obj.delete(propagation_policy=propagation_policy, force=True)
        else:
            await obj.delete(propagation_policy=propagation_policy, grace_period=grace_period)
    except kr8s.NotFoundError:
        return False
    return True


# -- what the API server answered -----------------------------------------------------------------------------


# What kube-apiserver's PodSecurity admission says when it refuses a pod.
POD_SECURITY_REFUSAL = "violates PodSecurity"


def status_code(err: BaseException) -> int | None:
    """The HTTP status of an API error (kr8s's, or a refused WebSocket upgrade), else None."""
    response = getattr(err, "response", None)
    return response.status_code if isinstance(response, httpx.Response) else None


def is_not_found(err: BaseException) -> bool:
    """404: no such object, or (for a custom resource) no such kind: the CRDs are not installed."""
    return isinstance(err, kr8s.ServerError) and status_code(err) == 404


def is_conflict(err: BaseException) -> bool:
    """409: it exists already (a create), or changed under us."""
    return isinstance(err, kr8s.ServerError) and status_code(err) == 409


def is_rejection(err: BaseException) -> bool:
    """400 or 422: the API server will never accept this body as written."""
    return isinstance(err, kr8s.ServerError) and status_code(err) in REJECTION_STATUSES


def is_forbidden(err: BaseException) -> bool:
    return isinstance(err, kr8s.ServerError) and status_code(err) == 403


def is_pod_security_refusal(err: BaseException) -> bool:
    """403 from the PodSecurity admission (`... violates PodSecurity "restricted:latest": ...`): unlike a missing
    permission, the pod as written will never be admitted to this namespace."""
    return is_forbidden(err) and POD_SECURITY_REFUSAL in str(err)


def denied_message(err: BaseException) -> str | None:
    """The API server's own words when it refused a request for lack of permission (403), else None.

    kube-apiserver names the user, verb, resource and namespace (`pods is forbidden: User "..." cannot create
    resource "pods" in API group "" in the namespace "ns"`), which is exactly what an administrator needs.
    """
    if is_forbidden(err) or isinstance(err, ForwardDenied):
        return str(err)
    return None


def outage_message(err: BaseException) -> str | None:
    """One line for an API server that did not answer (a timeout, a refused or broken connection) or answered that
    it cannot now (429, 5xx), else None: such a failure is retried, and a traceback would add nothing."""
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return outage_message(err.exceptions[0])
    if isinstance(err, httpx.TimeoutException | kr8s.APITimeoutError):
        return f"the API server did not answer in time ({type(err).__name__})"
    if isinstance(err, httpx.TransportError):
        return f"the API server could not be reached ({type(err).__name__}: {err})"
    if isinstance(err, kr8s.ServerError) and status_code(err) in OUTAGE_STATUSES:
        return f"the API server answered {status_code(err)}: {err}"
    return None


async def crds_installed(api: kr8s.asyncio.Api) -> bool:
    """Whether the API server serves DaskClusters."""
    async with api.call_api("GET", version=naming.API_VERSION, url=naming.PLURALS[naming.DASKCLUSTER],
                            params={"limit": 1}, raise_for_status=False) as resp:
        return bool(resp.status_code != 404)


async def cluster_missing(api: kr8s.asyncio.Api, message: str) -> DaskKubeError:
    """What a 404 on a DaskCluster means: the CRDs are not installed, else the cluster does not exist (`message`)."""
    if not await crds_installed(api):
        return CRDsNotInstalledError()
    return ClusterNotFoundError(message)


# -- logs ---------------------------------------------------------------------------------------------------------


async def pod_logs(pod: Pod, container: str | None = None, previous: bool = False, tail: int | None = None) -> str:
    """A pod's log as one string; an empty string when there is none (yet), or it cannot be read."""
    try:
        lines = [line async for line in pod.logs(container=container, previous=previous, tail_lines=tail,
                                                 timeout=30)]
    except (kr8s.ServerError, kr8s.NotFoundError, httpx.HTTPError):
        return ""
    return "\n".join(lines)


async def crash_logs(pod: Pod, tail: int = 50) -> str:
    """The last lines of a crashed container's previous instance (what it said before dying), else of the current
    one."""
    return await pod_logs(pod, previous=True, tail=tail) or await pod_logs(pod, tail=tail)
