"""DaskJob reconciler: being implemented (issue 4 item 5)."""

from __future__ import annotations

from .context import OperatorContext


class JobReconciler:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    async def reconcile(self, namespace: str, name: str) -> float | None:
        raise NotImplementedError("DaskJob reconciliation is not implemented yet")
