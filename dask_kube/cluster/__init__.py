"""KubeCluster (operator mode): lifecycle, networking (direct or self-healing port-forward), waits, display."""

from .kubecluster import KubeCluster
from .options import CreateMode

__all__ = ["CreateMode", "KubeCluster"]
