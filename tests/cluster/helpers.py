"""Waiting helpers for the KubeCluster tests: conditions with deadlines, never fixed sleeps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from localkube.testing import async_until, until


def wait_until(predicate: Callable[[], Any], within: float = 30, what: str = "condition") -> Any:
    return until(predicate, what, within)


async def async_wait_until(predicate: Callable[[], Awaitable[Any]], within: float = 30,
                           what: str = "condition") -> Any:
    return await async_until(predicate, what, within)
