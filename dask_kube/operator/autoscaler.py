"""DaskAutoscaler reconciler: being implemented (issue 4 item 6)."""

from __future__ import annotations

from .context import OperatorContext


class AutoscalerReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    async def reconcile(self, namespace: str, name: str) -> float | None:
        raise NotImplementedError("DaskAutoscaler reconciliation is not implemented yet")
