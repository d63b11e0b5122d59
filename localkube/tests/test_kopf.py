"""kopf, with default settings, runs an operator against LocalKube; each handler fires within 1 s."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kopf._core.intents import registries
from kopf.testing import KopfRunner

from . import kopf_records as operator

MANIFESTS = Path(__file__).parent / "manifests"
OPERATOR = Path(__file__).parent / "kopf_widget_operator.py"


@pytest.fixture
def fresh_registry(kube):  # type: ignore[no-untyped-def]
    """kopf picks its fallback login when its default registry is built, i.e. at import; the test process
    imported kopf before KUBECONFIG pointed at LocalKube, so build the registry now."""
    saved = registries.get_default_registry()
    registry = registries.SmartOperatorRegistry()
    registries.set_default_registry(registry)
    yield registry
    registries.set_default_registry(saved)


def _wait_record(handler: str, name: str, timeout: float = 15) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h, n, when in list(operator.RECORDS):
            if h == handler and n == name:
                return when
        time.sleep(0.01)
    raise AssertionError(f"{handler} handler did not run for {name}; records: {operator.RECORDS}")


@pytest.fixture(scope="module")
def widget_crd(kube):  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "-f", str(MANIFESTS / "widget-crd.yaml"))
    kube.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")


def test_kopf_handlers_create_update_delete_with_finalizer(kube, kubectl, namespace, widget_crd,  # type: ignore[no-untyped-def]
                                                          fresh_registry) -> None:
    operator.RECORDS.clear()
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60, registry=fresh_registry) as runner:
        # The operator is ready once it handled an object created before it started.
        kubectl("apply", "-f", "-", input=_widget("early", "small"))
        _wait_record("create", "early", timeout=30)

        t0 = time.monotonic()
        kubectl("apply", "-f", "-", input=_widget("w", "small"))
        assert _wait_record("create", "w") - t0 < 1.0
        kubectl("wait", "--for=jsonpath={.status.phase}=Created", "widget/w", "--timeout=10s")
        obj = kubectl("get", "widget", "w", "-o", "jsonpath={.metadata.finalizers}").stdout
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj
        assert kubectl("get", "widget", "w", "-o", "jsonpath={.status.created.size}").stdout == "small"

        t1 = time.monotonic()
        kubectl("apply", "-f", "-", input=_widget("w", "large"))
        assert _wait_record("update", "w") - t1 < 1.0
        kubectl("wait", "--for=jsonpath={.status.phase}=Updated-large", "widget/w", "--timeout=10s")

        t2 = time.monotonic()
        kubectl("delete", "widget", "w", "--wait=false")
        assert _wait_record("delete", "w") - t2 < 1.0
        kubectl("wait", "--for=delete", "widget/w", "--timeout=10s")
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "inconsistencies" not in runner.output  # status and main-resource patches were applied as sent


def _widget(name: str, size: str) -> str:
    return (f"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n"
            f"spec:\n  size: {size}\n")
