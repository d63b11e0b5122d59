"""HorizontalPodAutoscalers between autoscaling/v2 (stored) and autoscaling/v1 (what kubectl autoscale writes)."""

from __future__ import annotations

from localkube.apiserver import autoscaling


def test_hpa_v1_and_v2_convert_both_ways_without_loss() -> None:
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                   "metrics": [{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
                       "type": "AverageValue", "averageValue": "10"}}},
                               {"type": "Resource", "resource": {"name": "cpu", "target": {
                                   "type": "Utilization", "averageUtilization": 50}}}],
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
          "status": {"currentReplicas": 2, "desiredReplicas": 3, "conditions": [{"type": "AbleToScale"}],
                     "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                         "averageUtilization": 20, "averageValue": "100m"}}}]}}
    v1 = autoscaling.v2_to_v1(v2)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
                          "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 20}
    assert set(v1["metadata"]["annotations"]) == {autoscaling.METRICS, autoscaling.BEHAVIOR, autoscaling.CONDITIONS}
    back = autoscaling.v1_to_v2(v1)
    assert back["spec"]["behavior"] == v2["spec"]["behavior"]
    assert sorted(m["type"] for m in back["spec"]["metrics"]) == ["Pods", "Resource"]
    assert back["status"]["conditions"] == [{"type": "AbleToScale"}] and "annotations" not in back["metadata"]
