"""Helpers for tests against a Kubernetes: wait on a condition with a deadline and a message (never a fixed
sleep), and pick a free local port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any


def until(predicate: Callable[[], Any], what: str = "condition", within: float = 30, interval: float = 0.1,
          explain: Callable[[], str] | None = None) -> Any:
    """Return the first truthy value of `predicate()`, or fail naming `what` (and `explain()`, the state that
    tells why) after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}{detail}")
        time.sleep(interval)


async def async_until(predicate: Callable[[], Any | Awaitable[Any]], what: str = "condition", within: float = 30,
                      interval: float = 0.05) -> Any:
    """`until` for async tests; `predicate` may be sync or return an awaitable."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(interval)


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 (kr8s's `local_port="auto"` picks at random and can collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
