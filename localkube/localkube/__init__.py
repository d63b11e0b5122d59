"""LocalKube: a Kubernetes API server whose pods run as local processes.

It knows nothing of any product that runs on it: it exists for tests, demos and benchmarks of code written for
Kubernetes, on machines without a container engine (README.md).
"""

from localkube.cluster import LocalKube, ThreadedLocalKube

__all__ = ["LocalKube", "ThreadedLocalKube"]
