"""dask_kube: run Dask clusters on Kubernetes."""

__version__ = "0.1.0.dev0"
