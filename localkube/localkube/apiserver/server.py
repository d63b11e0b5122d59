"""The HTTP face of LocalKube: Kubernetes REST paths onto `ApiCore`, plus watch, logs and port-forward streams,
and the pod and service proxy (`proxy.py`).

Everything that is not implemented is refused the way a real server refuses it (a `Status` body with 404, 405 or
415), never half-done.

Every request passes one check before any handler, watch or stream runs (`ApiServer._authorize`): who it is
(`auth.py`, 401 for bad credentials) and whether RBAC lets it do what its URL asks (`rbac.py`, 403 worded as
kube-apiserver words it). Requests without credentials skip both, as the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from aiohttp import WSMsgType, web

from localkube.apiserver import discovery, eviction, proxy, rbac, reviews, serviceaccounts, ssa, tables
from localkube.apiserver.authn import ADMIN, ANONYMOUS, REQUEST_USER, Authenticator
from localkube.apiserver.core import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, POD_KEY, STRATEGIC_PATCH, ApiCore
from localkube.apiserver.errors import ApiError, invalid, success_status, unsupported_patch
from localkube.apiserver.kinds import Kind
from localkube.apiserver.store import ExpiredError

log = logging.getLogger(__name__)

PROTOBUF = "application/vnd.kubernetes.protobuf"
SPDY_PORTFORWARD = "SPDY/3.1+portforward.k8s.io"
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
# Where the middleware leaves the authenticated user for handlers (typed keys since aiohttp 3.12).
USER_KEY: Any = web.RequestKey("user", rbac.User) if hasattr(web, "RequestKey") else "localkube.user"


@dataclass
class LogOptions:
    container: str | None = None
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: str | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


class PodRuntime(Protocol):
    """What the kubelet offers the server for a pod: logs, port connections and exec."""

    def logs(self, pod: dict[str, Any], options: LogOptions) -> AsyncIterator[bytes]: ...

    async def open_port(
        self, pod: dict[str, Any], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

    async def exec(
        self, pod: dict[str, Any], container: str, command: list[str], ws: web.WebSocketResponse
    ) -> None: ...


class NoRuntime:
    """Used when no kubelet runs: pods never start, so they have no logs and no ports."""

    def logs(self, pod: dict[str, Any], options: LogOptions) -> AsyncIterator[bytes]:
        name = options.container or pod["spec"]["containers"][0]["name"]
        raise ApiError(400, f'container "{name}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                            "ContainerCreating")

    async def open_port(self, pod: dict[str, Any], port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise OSError(f"pod {pod['metadata']['name']} has no running containers")

    async def exec(self, pod: dict[str, Any], container: str, command: list[str], ws: web.WebSocketResponse) -> None:
        raise ApiError(400, f'container "{container}" in pod "{pod["metadata"]["name"]}" is not running')


@dataclass
class FaultRule:
    """Make matching requests fail with `status`, or stall for `delay` seconds first, `count` times."""

    pattern: str
    method: str = "*"
    status: int | None = None
    delay: float = 0.0
    count: int = 1
    user_agent: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern)

    def matches(self, request: web.Request) -> bool:
        if self.count <= 0:
            return False
        if self.method not in ("*", request.method):
            return False
        if self.user_agent and not request.headers.get("User-Agent", "").startswith(self.user_agent):
            return False
        return bool(self._regex.search(request.path_qs))


@dataclass
class ClientCut:
    """A network partition between some clients (User-Agent prefixes) and the API server. Their requests, and the
    events of their open watches, wait until it heals, as packets would; a request whose client gives up meanwhile
    is never served (the server cancels a handler whose connection closes)."""

    user_agents: tuple[str, ...]
    healed: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0  # requests and watch writes that had to wait
    abandoned: int = 0  # of those, the ones whose client gave up before the heal

    def matches(self, request: web.Request) -> bool:
        return not self.healed.is_set() and request.headers.get("User-Agent", "").startswith(self.user_agents)

    async def hold(self) -> None:
        self.held += 1
        try:
            await self.healed.wait()
        except asyncio.CancelledError:
            self.abandoned += 1
            raise


@dataclass(frozen=True)
class Denial:
    """A request refused by RBAC: who, what verb, which resource (`pods/log`, or a path) and where."""

    user: str
    verb: str
    resource: str
    namespace: str


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid value for {name}: {value!r}")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data), status=status, content_type="application/json", headers=headers)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _user_agent_product(request: web.Request) -> str:
    return request.headers.get("User-Agent", "unknown").split("/", 1)[0].split(" ", 1)[0] or "unknown"


class ApiServer:
    def __init__(self, core: ApiCore, runtime: PodRuntime | None = None,
                 kubernetes_version: str = discovery.DEFAULT_VERSION) -> None:
        self.core = core
        self.runtime: PodRuntime = runtime or NoRuntime()
        self.kubernetes_version = kubernetes_version
        self.faults: list[FaultRule] = []
        self.stats: Counter[tuple[str, str]] = Counter()
        self.bookmark_interval = 30.0
        # Without an authenticator every request is the admin (an ApiServer built outside LocalKube).
        self.authenticator: Authenticator | None = None
        self.authorizer = rbac.Authorizer(core.store)
        self.denials: list[Denial] = []
        self.cut: ClientCut | None = None
        self.app = self._make_app()

    # -- application ---------------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        for path in ("/version", "/version/"):
            r.add_get(path, self._version)
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, self._health)
        for path in ("/api", "/api/"):
            r.add_get(path, self._api)
        for path in ("/apis", "/apis/"):
            r.add_get(path, self._apis)
        r.add_get("/openapi/v3", self._openapi_root)
        r.add_get("/openapi/v3/{gv:.+}", self._openapi_doc)
        r.add_route("*", "/api/{version}", self._group_version)
        r.add_route("*", "/apis/{group}", self._api_group)
        r.add_route("*", "/apis/{group}/{version}", self._group_version)
        r.add_route("*", "/api/{version}/{rest:.+}", self._resource)
        r.add_route("*", "/apis/{group}/{version}/{rest:.+}", self._resource)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.stats[(_user_agent_product(request), request.method)] += 1
        try:
            await self._through_cut(request)
            for rule in self.faults:
                if rule.matches(request):
                    rule.count -= 1
                    if rule.delay:
                        await asyncio.sleep(rule.delay)
                    if rule.status:
                        raise ApiError(rule.status, f"fault injected by LocalKube for {request.method} {request.path}")
                    break
            request[USER_KEY] = self._authorize(request)
            REQUEST_USER.set(request[USER_KEY])
            return await handler(request)
        except ApiError as err:
            return _json(err.status(), err.code, err.headers or None)
        except web.HTTPException as exc:
            if exc.status == 404:
                return _json(ApiError(404, "the server could not find the requested resource").status(), 404)
            if exc.status == 405:
                return _json(ApiError(405, f"the server does not allow this method on the requested resource "
                                           f"({request.method} {request.path})").status(), 405)
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug in LocalKube: answer as a real server would, and log it
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return _json(ApiError(500, f"LocalKube internal error: {exc!r}").status(), 500)

    async def _through_cut(self, request: web.Request) -> None:
        """Wait out a partition between this request's client and the server (fault hook, see ClientCut)."""
        cut = self.cut
        if cut is not None and cut.matches(request):
            await cut.hold()

    async def _send_event(self, request: web.Request, resp: web.StreamResponse, event_type: str,
                          obj: dict[str, Any]) -> None:
        """One line of a watch stream, held while its client is cut off."""
        await self._through_cut(request)
        await resp.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

    def _authorize(self, request: web.Request) -> rbac.User:
        """The request's user, if it may do what it asks; else 401 or 403. The one check every request passes."""
        headers = request.headers
        if self.authenticator is None:
            return ADMIN
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if request.secure and transport is not None else None
        if "Authorization" not in headers and "Impersonate-User" not in headers and not peercert:
            if not request.secure:
                return ADMIN  # the insecure port: plain HTTP, off unless asked for (see authn.py)
            user = ANONYMOUS
        else:
            user = self.authenticator.authenticate(headers, secure=request.secure, peercert=peercert)
        if user.is_master:
            return user
        attrs = rbac.request_attributes(request.method, request.path, request.query)
        if not self.authorizer.allowed(user, attrs):
            self.denials.append(Denial(user.name, attrs.verb, attrs.full_resource or attrs.path, attrs.namespace))
            raise rbac.forbidden(user, attrs)
        return user

    # -- discovery -----------------------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return _json(discovery.version_info(self.kubernetes_version))

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _aggregated_requested(self, request: web.Request) -> bool:
        return "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")

    async def _api(self, request: web.Request) -> web.Response:
        if self._aggregated_requested(request):
            return web.Response(body=json.dumps(discovery.aggregated(self.core.registry, core=True)),
                                headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE})
        return _json(discovery.api_versions())

    async def _apis(self, request: web.Request) -> web.Response:
        if self._aggregated_requested(request):
            return web.Response(body=json.dumps(discovery.aggregated(self.core.registry, core=False)),
                                headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE})
        return _json(discovery.api_group_list(self.core.registry))

    async def _api_group(self, request: web.Request) -> web.Response:
        doc = discovery.api_group(self.core.registry, request.match_info["group"])
        if doc is None or request.method != "GET":
            raise ApiError(404, "the server could not find the requested resource")
        return _json(doc)

    async def _group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        doc = discovery.api_resource_list(self.core.registry, group, request.match_info["version"])
        if doc is None or request.method != "GET":
            raise ApiError(404, "the server could not find the requested resource")
        return _json(doc)

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return _json(discovery.openapi_root(self.core.registry))

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        doc = discovery.openapi_document(self.core.registry, request.match_info["gv"], self.kubernetes_version)
        if doc is None:
            raise ApiError(404, "the server could not find the requested resource")
        return _json(doc)

    # -- resources -----------------------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[Kind, str | None, str | None, str | None, list[str]]:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        if not group and version != "v1":
            raise ApiError(404, "the server could not find the requested resource")
        segs = [s for s in request.match_info["rest"].split("/")]
        namespace = None
        if segs[0] == "namespaces" and len(segs) >= 3 and not (len(segs) == 3 and segs[2] in ("status", "finalize")):
            namespace, segs = segs[1], segs[2:]
        plural = segs[0]
        name = segs[1] if len(segs) > 1 else None
        sub = segs[2] if len(segs) > 2 else None
        rest = segs[3:]
        kind = self.core.registry.lookup(group, version, plural)
        if kind is None or (kind.namespaced is False and namespace is not None) or (
                kind.namespaced and name is not None and namespace is None):
            raise ApiError(404, "the server could not find the requested resource")
        if sub is not None and sub not in kind.subresources():
            raise ApiError(404, "the server could not find the requested resource")
        if rest and sub != "proxy":
            raise ApiError(404, "the server could not find the requested resource")
        if name == "":
            raise ApiError(404, "the server could not find the requested resource")
        return kind, namespace, name, sub, rest

    async def _read_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        ctype = request.content_type.lower()
        try:
            if ctype == PROTOBUF:
                from localkube.apiserver import protobuf

                try:
                    return protobuf.decode_k8s_protobuf(raw)
                except protobuf.ProtobufDecodeError as err:
                    raise ApiError(415, f"LocalKube could not decode this protobuf body ({err}); send JSON instead")
            if ctype == "application/yaml":
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as err:
            raise ApiError(400, f"the body of the request was in an unknown format: {err}")

    def _field_validation(self, request: web.Request) -> str:
        value = request.query.get("fieldValidation", "Warn") or "Warn"
        if value not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got: {value}')
        return value

    def _dry_run(self, request: web.Request) -> bool:
        return "All" in request.query.getall("dryRun", [])

    def _field_manager(self, request: web.Request, options_kind: str) -> str:
        """Who a non-apply write is recorded as in managedFields: `fieldManager`, else the User-Agent's product
        (`kubectl/v1.32.4 (linux/amd64) ...` -> `kubectl`), as kube-apiserver derives it."""
        manager = request.query.get("fieldManager", "")
        ssa.validate_field_manager(manager, apply=False, options_kind=options_kind)
        return manager or ssa.default_field_manager(request.headers.get("User-Agent")) or "unknown"

    def _respond(self, request: web.Request, kind: Kind, obj: dict[str, Any], status: int = 200,
                 warnings: list[str] | None = None) -> web.Response:
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join(warnings)
        if _wants_table(request) and obj.get("kind") == kind.kind:
            return _json(self._table(kind, [obj]), status, headers)
        return _json(obj, status, headers)

    def _table(self, kind: Kind, objects: list[dict[str, Any]], rv: str = "") -> dict[str, Any]:
        return tables.render_table(
            group=kind.group, plural=kind.plural, objects=objects, now=self.core.clock(),
            printer_columns=list(kind.printer_columns) or None, resource_version=rv,
        )

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        kind, namespace, name, sub, _rest = self._route(request)
        ns = namespace or ""
        method = request.method
        core = self.core
        if name is None:
            if method == "GET":
                if _flag(request, "watch"):
                    return await self._watch(request, kind, namespace)
                return self._list(request, kind, namespace)
            if method == "POST":
                if kind.namespaced and namespace is None:
                    raise ApiError(404, "the server could not find the requested resource")
                body = await self._read_body(request)
                if kind.virtual:
                    return _json(self._review(request, kind, body), 201)
                manager = self._field_manager(request, "CreateOptions")
                obj, warnings = core.create(kind, ns, body, field_validation=self._field_validation(request),
                                            dry_run=self._dry_run(request), manager=manager)
                return self._respond(request, kind, obj, 201, warnings)
            if method == "DELETE":
                return await self._delete_collection(request, kind, namespace)
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")
        if sub == "token" and method == "POST" and self.authenticator is not None:
            body = await self._read_body(request)
            return _json(serviceaccounts.token_request(core, self.authenticator, ns, name, body), 201)
        if sub == "proxy":
            return await proxy.handle(request, core, kind.plural, ns, name, self.runtime.open_port)
        if sub in ("log", "portforward", "exec", "attach", "binding", "eviction", "token", "finalize"):
            return await self._pod_subresource(request, kind, ns, name, sub)
        if sub == "scale":
            if method == "GET":
                return _json(core.get_scale(kind, ns, name))
            if method == "PUT":
                manager = self._field_manager(request, "UpdateOptions")
                return _json(core.update_scale(kind, ns, name, await self._read_body(request) or {}, manager=manager))
            if method == "PATCH":
                manager = self._field_manager(request, "PatchOptions")
                ctype = request.content_type.lower()
                body = None if ctype == APPLY_PATCH else await self._read_body(request)
                return _json(core.patch_scale(kind, ns, name, ctype, body, manager=manager))
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")
        if method == "GET":
            return self._respond(request, kind, core.get(kind, ns, name))
        if method == "PUT":
            manager = self._field_manager(request, "UpdateOptions")
            body = await self._read_body(request)
            obj, warnings = core.replace(kind, ns, name, body, subresource=sub,
                                         field_validation=self._field_validation(request),
                                         dry_run=self._dry_run(request), manager=manager)
            return self._respond(request, kind, obj, 200, warnings)
        if method == "PATCH":
            ctype = request.content_type.lower()
            if ctype == APPLY_PATCH:
                return await self._apply(request, kind, ns, name, sub)
            if ctype not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
                raise unsupported_patch(kind.builtin)
            manager = self._field_manager(request, "PatchOptions")
            if "force" in request.query:
                raise invalid("PatchOptions.meta.k8s.io", "", [{
                    "reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
                    "field": "force"}], "meta.k8s.io")
            body = await self._read_body(request)
            obj, warnings = core.patch(kind, ns, name, ctype, body, subresource=sub,
                                       field_validation=self._field_validation(request),
                                       dry_run=self._dry_run(request), manager=manager)
            return self._respond(request, kind, obj, 200, warnings)
        if method == "DELETE":
            if sub is not None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            opts = await self._delete_options(request)
            obj = core.delete(kind, ns, name, **opts)
            if obj["metadata"].get("deletionTimestamp") and core.store.get(kind.key, ns, name) is not None:
                return _json(obj, 200)
            if kind.builtin and kind.key != POD_KEY:
                return _json(success_status(name, kind.group, kind.plural, obj["metadata"]["uid"]))
            return _json(obj)
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")

    async def _apply(self, request: web.Request, kind: Kind, ns: str, name: str, sub: str | None) -> web.Response:
        """PATCH with application/apply-patch+yaml: server-side apply, creating the object if it is missing (201)."""
        manager = request.query.get("fieldManager", "")
        ssa.validate_field_manager(manager, apply=True)  # before the body is read, as the server checks options
        body = ssa.parse_apply_body(await request.read())
        obj, warnings, created = self.core.apply(
            kind, ns, name, body, manager=manager, force=_flag(request, "force"), subresource=sub,
            field_validation=self._field_validation(request), dry_run=self._dry_run(request))
        return self._respond(request, kind, obj, 201 if created else 200, warnings)

    def _review(self, request: web.Request, kind: Kind, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        review = dict(body, apiVersion=kind.api_version, kind=kind.kind)
        return reviews.answer(kind.kind, review, request.get(USER_KEY, ADMIN), self.authorizer, self.authenticator)

    def _list(self, request: web.Request, kind: Kind, namespace: str | None) -> web.Response:
        items, rv = self.core.list(kind, namespace, request.query.get("labelSelector"),
                                   request.query.get("fieldSelector"))
        if _wants_table(request):
            return _json(self._table(kind, items, rv))
        return _json({
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        })

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        body = await self._read_body(request) or {}
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        grace = body.get("gracePeriodSeconds", _int_param(request, "gracePeriodSeconds"))
        policy = body.get("propagationPolicy", request.query.get("propagationPolicy"))
        orphan = body.get("orphanDependents", None)
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        return {"grace_period": grace, "propagation": policy, "preconditions": body.get("preconditions"),
                "dry_run": self._dry_run(request) or "All" in (body.get("dryRun") or [])}

    async def _delete_collection(self, request: web.Request, kind: Kind, namespace: str | None) -> web.Response:
        opts = await self._delete_options(request)
        items, _rv = self.core.list(kind, namespace, request.query.get("labelSelector"),
                                    request.query.get("fieldSelector"))
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                deleted.append(self.core.delete(kind, meta.get("namespace", ""), meta["name"], **opts))
        return _json({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                      "metadata": {"resourceVersion": str(self.core.store.revision)}, "items": deleted})

    async def _watch(self, request: web.Request, kind: Kind, namespace: str | None) -> web.StreamResponse:
        core = self.core
        predicate = core.predicate(kind, request.query.get("labelSelector"), request.query.get("fieldSelector"))
        rv_param = request.query.get("resourceVersion", "")
        try:
            since = None if rv_param in ("", "0") else int(rv_param)
        except ValueError:
            raise ApiError(400, f"invalid resource version: {rv_param}")
        timeout = _int_param(request, "timeoutSeconds")
        bookmarks = _flag(request, "allowWatchBookmarks")
        # sendInitialEvents: the current state as ADDED, then a bookmark marking its end, then live events.
        initial_events = _flag(request, "sendInitialEvents")
        if initial_events:
            if not bookmarks or request.query.get("resourceVersionMatch") != "NotOlderThan":
                raise ApiError(422, "sendInitialEvents requires allowWatchBookmarks=true and "
                                    "resourceVersionMatch=NotOlderThan")
            since = None
        table = _wants_table(request)
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            watcher = core.store.watch(kind.key, namespace if kind.namespaced else None, predicate, since)
        except ExpiredError as err:
            status = ApiError(410, str(err), "Expired").status()
            await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            return resp
        deadline = time.monotonic() + timeout if timeout else None
        last_bookmark = time.monotonic()
        try:
            if initial_events:
                # The snapshot was queued atomically with the subscription: count it and note its revision
                # before the first await lets newer writes in.
                initial, snapshot_rv = watcher.queue.qsize(), core.store.revision
                for _ in range(initial):
                    item = watcher.queue.get_nowait()
                    if item is not None:
                        await self._send_event(request, resp, item[0], core._served(kind, item[1]))
                mark = {"kind": kind.kind, "apiVersion": kind.api_version,
                        "metadata": {"resourceVersion": str(snapshot_rv),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}
                await self._send_event(request, resp, "BOOKMARK", mark)
            while True:
                wait = 1.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0.01))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    if bookmarks and time.monotonic() - last_bookmark >= self.bookmark_interval:
                        last_bookmark = time.monotonic()
                        mark = {"kind": kind.kind, "apiVersion": kind.api_version,
                                "metadata": {"resourceVersion": str(core.store.revision)}}
                        await self._send_event(request, resp, "BOOKMARK", mark)
                    continue
                if item is None:
                    break
                event_type, obj = item
                obj = core._served(kind, obj)
                payload: dict[str, Any] = self._table(kind, [obj]) if table else obj
                await self._send_event(request, resp, event_type, payload)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            core.store.unwatch(watcher)
        return resp

    # -- pod streams ---------------------------------------------------------------------------------------

    async def _pod_subresource(self, request: web.Request, kind: Kind, ns: str, name: str,
                               sub: str) -> web.StreamResponse:
        if kind.key != POD_KEY:
            raise ApiError(405, f"LocalKube does not serve {kind.plural}/{sub}")
        if sub == "eviction" and request.method == "POST":  # the Eviction API (eviction.py)
            body = await self._read_body(request)
            return _json(eviction.evict(self.core, ns, name, body, dry_run=self._dry_run(request)), 201)
        pod = self.core.get(kind, ns, name)
        if sub == "log" and request.method == "GET":
            return await self._logs(request, pod)
        if sub == "portforward":
            return await self._portforward(request, pod)
        if sub == "exec" and request.method in ("GET", "POST"):
            return await self._exec(request, pod)
        if sub == "binding" and request.method == "POST":
            body = await self._read_body(request) or {}
            target = (body.get("target") or {}).get("name") if isinstance(body, dict) else None
            if not target:
                raise ApiError(422, f'Binding "{name}" is invalid: target.name: Required value')
            self.core.bind_pod(ns, name, target)
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
                         201)
        raise ApiError(405, f"LocalKube does not serve pods/{sub} for {request.method}")

    def _container(self, pod: dict[str, Any], requested: str | None) -> str:
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        if requested:
            if requested not in names:
                init = [c["name"] for c in pod["spec"].get("initContainers", [])]
                if requested not in init:
                    raise ApiError(400, f"container {requested} is not valid for pod {pod['metadata']['name']}")
            return requested
        default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default in names:
            return default
        if len(names) != 1:
            raise ApiError(400, f"a container name must be specified for pod {pod['metadata']['name']}, "
                                f"choose one of: [{' '.join(names)}]")
        return names[0]

    async def _logs(self, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
        options = LogOptions(
            container=self._container(pod, request.query.get("container")),
            follow=_flag(request, "follow"),
            previous=_flag(request, "previous"),
            tail_lines=_int_param(request, "tailLines"),
            since_seconds=_int_param(request, "sinceSeconds"),
            since_time=request.query.get("sinceTime"),
            timestamps=_flag(request, "timestamps"),
            limit_bytes=_int_param(request, "limitBytes"),
        )
        chunks = self.runtime.logs(pod, options)
        # Errors (a waiting container, no previous instance) are raised before the runtime waits for output,
        # so they can still become the 400 they are; a quiet followed container must not hold back the headers.
        first = asyncio.ensure_future(anext(chunks))
        await asyncio.wait({first}, timeout=0.2)
        if first.done() and first.exception() is not None and not isinstance(first.exception(), StopAsyncIteration):
            raise first.exception()  # type: ignore[misc]
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            try:
                chunk = await first
            except StopAsyncIteration:
                return resp
            await resp.write(chunk)
            async for chunk in chunks:
                await resp.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            first.cancel()
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
        return resp

    def _error_text(self, pod: dict[str, Any]) -> Callable[[int, BaseException], str]:
        meta = pod["metadata"]

        def text(port: int, exc: BaseException) -> str:
            return f"error forwarding port {port} to pod {meta['name']}, uid {meta['uid']}: {exc}"

        return text

    async def _portforward(self, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
        from localkube.node import portforward

        if (pod.get("status") or {}).get("phase") != "Running":
            raise ApiError(400, f"pod {pod['metadata']['name']} is not running: phase "
                                f"{(pod.get('status') or {}).get('phase')}")

        async def open_target(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            current = self.core.store.get(POD_KEY, pod["metadata"]["namespace"], pod["metadata"]["name"])
            return await self.runtime.open_port(current or pod, port)

        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
            if SPDY_PORTFORWARD in offered:
                ws = web.WebSocketResponse(protocols=(SPDY_PORTFORWARD,), autoping=True, max_msg_size=0)
                await ws.prepare(request)
                await portforward.serve_spdy_portforward(
                    portforward.websocket_recv(ws), portforward.websocket_send(ws), open_target,
                    self._error_text(pod))
                await ws.close()
                return ws
            ports = [int(p) for p in request.query.get("ports", "").split(",") if p.strip()]
            if not ports:
                raise ApiError(400, "at least one port must be specified")
            return await portforward.serve_channel_upgrade(request, ports, open_target, self._error_text(pod))
        if upgrade.startswith("spdy/3.1") and hasattr(portforward, "serve_raw_spdy_upgrade"):
            return await portforward.serve_raw_spdy_upgrade(request, open_target, self._error_text(pod))
        raise ApiError(400, "Upgrade request required")

    async def _exec(self, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "Upgrade request required")
        container = self._container(pod, request.query.get("container"))
        command = request.query.getall("command", [])
        if not command:
            raise ApiError(400, "you must specify at least 1 command")
        if (pod.get("status") or {}).get("phase") != "Running":
            raise ApiError(400, f'container "{container}" in pod "{pod["metadata"]["name"]}" is not running')
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        try:
            await self.runtime.exec(pod, container, command, ws)
        finally:
            if not ws.closed:
                await ws.close()
        return ws


async def drain_websocket(ws: web.WebSocketResponse) -> AsyncIterator[bytes]:
    """Binary payloads from a client websocket until it closes (shared by exec implementations)."""
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            yield msg.data
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
