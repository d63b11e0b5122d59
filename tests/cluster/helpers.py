"""Waiting helpers for the KubeCluster tests: conditions with deadlines, never fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], within: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {within}s"
        time.sleep(0.1)


async def async_wait_until(predicate: Callable[[], Awaitable[Any]], within: float = 30,
                           what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {within}s"
        await asyncio.sleep(0.1)
