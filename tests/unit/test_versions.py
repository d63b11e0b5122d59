"""Which versions differ, by distributed's rules, and the message that says how to fix it."""

from __future__ import annotations

from dask_kube.cluster import versions


def info(**packages: str | None) -> dict:
    return {"packages": {"python": "3.12.1", "dask": "2025.1.0", "distributed": "2025.1.0", "msgpack": "1.0",
                         **packages}}


def test_equal_versions_differ_in_nothing() -> None:
    assert versions.differences(info(), info(), {"w1": info(), "w2": info()}) == []


def test_each_difference_names_every_side() -> None:
    found = versions.differences(info(), info(distributed="2024.1.0"), {"w1": info(distributed="2024.1.0"),
                                                                          "w2": info(distributed="2024.2.0")})
    assert [str(d) for d in found] == [
        "distributed: client 2025.1.0; scheduler 2024.1.0; workers 2024.1.0, 2024.2.0"]


def test_packages_the_scheduler_need_not_match_are_compared_on_workers_only() -> None:
    assert versions.differences(info(), info(numpy="2.0"), {}) == []  # distributed's own rule
    (found,) = versions.differences(info(), info(), {"w": info(numpy="2.0")})
    assert (found.package, found.client, found.scheduler, found.workers) == ("numpy", "missing", None, ("2.0",))


def test_the_message_says_how_to_fix_it() -> None:
    scheduler = info(distributed="2024.1.0", python="3.11.7")
    found = versions.differences(info(), scheduler, {})
    text = versions.message("demo", found, "ghcr.io/dask/dask:2025.1.0-py3.12", scheduler)
    assert text.splitlines()[0] == "Versions differ between this client and cluster demo:"
    assert "python: client 3.12.1; scheduler 3.11.7" in text
    assert "ghcr.io/dask/dask:2025.1.0-py3.12" in text
    assert text.endswith("pip install distributed==2024.1.0")  # python is not pip-installable
