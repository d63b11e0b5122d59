"""Legacy mode: `KubeCluster.from_yaml` / `from_dict`, where the client creates worker pods from a Pod template.

See docs/legacy.md; docs/migration.md shows the same workload with the operator.
"""

from .cluster import KubeCluster, SchedulerPod, WorkerPod, from_dict, from_yaml
from .pods import clean_pod_template, make_pod_from_dict, make_pod_spec

__all__ = ["KubeCluster", "SchedulerPod", "WorkerPod", "clean_pod_template", "from_dict", "from_yaml",
           "make_pod_from_dict", "make_pod_spec"]
