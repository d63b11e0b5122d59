"""LocalKube: a Kubernetes API server whose pods run as local processes.

Nothing in this package imports the rest of dask_kube, and the product never imports it:
it exists for tests, demos and benchmarks (see docs/localkube.md).
"""
