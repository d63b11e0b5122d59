"""managedFields on ApiCore's write paths (create, update, patch, status, scale, controllers, apply), and the
exactness of the shortcuts that make recording them cheap."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localkube.apiserver import ssa
from localkube.apiserver.core import MERGE_PATCH, STRATEGIC_PATCH, ApiCore
from localkube.apiserver.errors import ApiError

T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"
CM = ("", "configmaps")
DEPLOY = ("apps", "deployments")


@pytest.fixture
def core() -> ApiCore:
    api = ApiCore()
    api.bootstrap()
    return api


def _cm(name: str = "c", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"a": "1"}}


def _deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}


def _owned(obj: dict[str, Any]) -> dict[str, set[str]]:
    return {e["manager"] + (f"/{e['subresource']}" if e.get("subresource") else ""):
            {ssa.path_string(p) for p in ssa.fields_from_json(e["fieldsV1"])}
            for e in obj["metadata"].get("managedFields", [])}


# ------------------------------------------------------------------------------------------------ ApiCore


def test_creator_owns_what_it_set_and_the_defaults_but_not_what_admission_adds(core: ApiCore) -> None:
    obj, _ = core.create(core.kind_of(DEPLOY), "default", _deployment(), manager="kubectl-create")
    owned = _owned(obj)["kubectl-create"]
    assert {".spec.replicas", ".spec.progressDeadlineSeconds", ".spec.revisionHistoryLimit",
            '.spec.template.spec.containers[name="app"].imagePullPolicy'} <= owned  # defaults are the creator's
    core.admission[CM] = [lambda obj, old: obj["data"].setdefault("admitted", "yes")]  # a mutating admission hook
    obj, _ = core.create(core.kind_of(CM), "default", _cm(), manager="kubectl-create")
    assert obj["data"]["admitted"] == "yes" and _owned(obj)["kubectl-create"] == {".data", ".data.a"}


def test_no_op_writes_keep_resource_version_and_entries(core: ApiCore) -> None:
    kind = core.kind_of(CM)
    first, _ = core.create(kind, "default", _cm(), manager="a")
    again, _ = core.patch(kind, "default", "c", MERGE_PATCH, {"data": {"a": "1"}}, manager="b")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == first["metadata"]["managedFields"]


def test_patches_and_updates_move_ownership(core: ApiCore) -> None:
    kind = core.kind_of(DEPLOY)
    core.create(kind, "default", _deployment(), manager="kubectl-create")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}
    obj, _ = core.patch(kind, "default", "web", STRATEGIC_PATCH, patch, manager="kubectl-set")
    image = '.spec.template.spec.containers[name="app"].image'
    assert _owned(obj)["kubectl-set"] == {image}
    assert image not in _owned(obj)["kubectl-create"]
    obj = copy.deepcopy(obj)  # as a client holds it: stored objects are never changed in place
    obj["spec"]["replicas"] = 4
    obj, _ = core.replace(kind, "default", "web", obj, manager="kubectl-replace")
    assert _owned(obj)["kubectl-replace"] == {".spec.replicas"}


def test_status_and_scale_writes_are_recorded_with_their_subresource(core: ApiCore) -> None:
    kind = core.kind_of(DEPLOY)
    core.create(kind, "default", _deployment(), manager="kubectl-create")
    obj = core.mutate(kind, "default", "web", lambda o: o.__setitem__("status", {"replicas": 1}),
                      subresource="status", manager="kube-controller-manager")
    assert _owned(obj)["kube-controller-manager/status"] == {".status", ".status.replicas"}
    core.update_scale(kind, "default", "web", {"spec": {"replicas": 3}}, manager="kubectl")
    obj = core.get(kind, "default", "web")
    assert obj["spec"]["replicas"] == 3 and _owned(obj)["kubectl/scale"] == {".spec.replicas"}
    assert ".spec.replicas" not in _owned(obj)["kubectl-create"]


def test_client_sent_managed_fields_are_kept_or_reset(core: ApiCore) -> None:
    kind = core.kind_of(CM)
    obj, _ = core.create(kind, "default", _cm(), manager="kubectl-create")
    sent = ssa.update_managed_fields(None, _cm(), "exporter", now=T1)["metadata"]["managedFields"]
    body = copy.deepcopy(obj)
    body["metadata"]["managedFields"] = sent
    obj, _ = core.replace(kind, "default", "c", body, manager="kubectl-replace")  # no field changes: kept as sent
    assert set(_owned(obj)) == {"exporter"}
    obj, _ = core.patch(kind, "default", "c", MERGE_PATCH, {"metadata": {"managedFields": [{}]}}, manager="x")
    assert "managedFields" not in obj["metadata"]


def test_the_api_servers_own_writes_name_it(core: ApiCore) -> None:
    ns = core.get(core.kind_of(("", "namespaces")), "", "default")
    assert set(_owned(ns)) == {"kube-apiserver"}


def test_apply_goes_through_the_ordinary_write_path(core: ApiCore) -> None:
    kind = core.kind_of(DEPLOY)
    obj, _, created = core.apply(kind, "default", "web", _deployment(), manager="kubectl")
    assert created and obj["metadata"]["generation"] == 1 and obj["spec"]["revisionHistoryLimit"] == 10
    assert ".spec.revisionHistoryLimit" not in _owned(obj)["kubectl"]  # defaults after apply are nobody's
    dry, _, _ = core.apply(kind, "default", "web", dict(_deployment(), spec={"replicas": 5}), manager="ops",
                           force=True, dry_run=True)
    assert dry["spec"]["replicas"] == 5 and dry["metadata"]["generation"] == 2
    assert core.get(kind, "default", "web")["spec"]["replicas"] == 1
    obj, _, created = core.apply(kind, "default", "web", dict(_deployment(), spec={"replicas": 5}), manager="ops",
                                 force=True)
    assert not created and obj["spec"]["replicas"] == 5 and obj["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as err:
        core.apply(kind, "default", "web", _deployment(), manager="kubectl")
    assert err.value.code == 409 and 'conflict with "ops": .spec.replicas' in err.value.message
    bad = _deployment()
    bad["spec"]["replicas"] = -1
    with pytest.raises(ApiError) as err:
        core.apply(kind, "default", "web", bad, manager="ops", force=True)
    assert err.value.code == 422  # the merged object is validated like any other


# ------------------------------------------------------------------------------------------------ shortcuts


def test_a_bool_replacing_an_equal_number_is_a_change() -> None:
    """Python's == says True == 1; the recorder must not take that for "unchanged"."""
    live = ssa.update_managed_fields(None, _cm(), "a", now=T1, status_subresource=False)
    live["metadata"]["uid"] = "u"
    before = dict(live, spec={"x": {"on": 1, "n": 1.0}})
    before = ssa.update_managed_fields(live, before, "a", now=T1, status_subresource=False)
    after = copy.deepcopy(before)
    after["spec"]["x"]["on"] = True
    obj = ssa.update_managed_fields(before, after, "b", now=T2, status_subresource=False)
    assert _owned(obj)["b"] == {".spec.x.on"}
    same = copy.deepcopy(before)
    same["spec"]["x"]["n"] = 1  # 1.0 and 1 are the same JSON number
    assert ssa.update_managed_fields(before, same, "b", now=T2, status_subresource=False)["metadata"][
        "managedFields"] == before["metadata"]["managedFields"]


def test_malformed_items_in_a_changed_part_keep_the_live_entries() -> None:
    live = ssa.update_managed_fields(None, _deployment(), "a", now=T1)
    live["metadata"]["uid"] = "u"
    bad = copy.deepcopy(live)
    bad["spec"]["template"]["spec"]["containers"].append({"image": "no-name"})  # a list-map item without its key
    obj = ssa.update_managed_fields(live, bad, "b", now=T2)
    assert obj["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_unchanged_entries_are_written_back_identically() -> None:
    live = ssa.update_managed_fields(None, _cm(a="1", b="2"), "a", now=T1, status_subresource=False)
    live["metadata"]["uid"] = "u"
    new = copy.deepcopy(live)
    new["data"]["b"] = "3"
    obj = ssa.update_managed_fields(live, new, "b", now=T2, status_subresource=False)
    assert [(e["manager"], e.get("time")) for e in obj["metadata"]["managedFields"]] == [("a", T1), ("b", T2)]
    assert _owned(obj) == {"a": {".data", ".data.a"}, "b": {".data.b"}}
    again = ssa.update_managed_fields(obj, copy.deepcopy(obj), "c", now=T2, status_subresource=False)
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_caches_change_nothing_observable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same writes give the same managedFields whether the decoding and interning caches hit or not."""
    from localkube.apiserver.ssa import managed

    def run() -> list[Any]:
        api = ApiCore()
        api.bootstrap()
        kind = api.kind_of(DEPLOY)
        for i in range(3):
            dep = _deployment()
            dep["metadata"]["name"] = f"web-{i}"
            api.create(kind, "default", dep, manager="creator")
        for step in range(6):
            name = f"web-{step % 3}"
            patch = {"spec": {"replicas": step, "template": {"metadata": {"labels": {f"l{step}": "x"}}}}}
            api.patch(kind, "default", name, STRATEGIC_PATCH, patch, manager=f"m{step % 2}")
            api.mutate(kind, "default", name, lambda o, s=step: o.__setitem__("status", {"replicas": s}),
                       subresource="status", manager="controller")
        return [api.get(kind, "default", f"web-{i}")["metadata"]["managedFields"] for i in range(3)]

    api_clock = "localkube.apiserver.core.ApiCore.now"
    monkeypatch.setattr(api_clock, lambda self: T1)
    normal = run()
    monkeypatch.setattr(managed, "_INTERNED_MAX", 1)
    monkeypatch.setattr(managed, "_LAST_MAX", 0)
    monkeypatch.setattr(managed, "_RECENT_MAX", 0)
    starved = run()
    assert starved == normal
    owners = {e["manager"] for e in normal[0]}
    assert owners == {"creator", "m0", "m1", "controller"}


def test_shared_entries_are_never_changed_in_place(core: ApiCore) -> None:
    kind = core.kind_of(CM)
    core.create(kind, "default", _cm("a"), manager="same")
    b, _ = core.create(kind, "default", _cm("b"), manager="same")
    before = copy.deepcopy(b["metadata"]["managedFields"])
    core.patch(kind, "default", "a", MERGE_PATCH, {"data": {"z": "1"}}, manager="other")
    core.patch(kind, "default", "a", MERGE_PATCH, {"data": {"a": "2"}}, manager="same")
    assert core.get(kind, "default", "b")["metadata"]["managedFields"] == before
    assert _owned(core.get(kind, "default", "a")) == {"same": {".data", ".data.a"}, "other": {".data.z"}}
