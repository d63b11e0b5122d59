"""Test tiers: tests/unit needs no server; tests/localkube and the rest use the session LocalKube."""

pytest_plugins = ["dask_kube.localkube.pytest_plugin"]
