"""One reconcile loop per object, woken by events and resynced on a timer.

Each custom resource gets a kopf daemon running `Loops.run`: it reconciles, then sleeps until something wakes
it (its own changes, its children's pod events) or the resync period passes. Level-triggered: every pass
computes what should exist from what does exist, so missed events, restarts and partial work all converge.
A loop ends when its pass finds the object gone or being deleted (`Gone`), and kopf cancels it then too: either
way its entries here go with it. (It does not rely on the cancellation alone: a cancellation that arrives as an
awaited wait completes can be lost, and kopf then leaves the task running, orphaned, for good.)

The resync is only a safety net for missed events, so it backs off while an object is quiet: each resync in a
row that nothing woke doubles the next one, up to `resync_max` (an idle cluster then costs a few requests a
minute, not a few every ten seconds). Any event, and any pass that asks for a time of its own (work in flight, an
idle-timeout deadline), resets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .. import kubernetes_api
from . import metrics
from .plan import Key

# Told about a failed pass whose error differs from the previous one. Returns a one-line explanation of a failure
# it understands (an API outage; a missing permission, which it also tells the user in a Warning Event), so that
# the log needs that line, not a traceback; None for anything else (a bug: logged with its traceback).
Report = Callable[[Key, Exception], Awaitable[str | None]]
log = logging.getLogger(__name__)


class Gone(Exception):
    """Raised by a pass that found its object deleted, or being deleted: the loop ends."""


class Loops:
    def __init__(self, resync_seconds: float, resync_max_seconds: float | None = None,
                 report: Report | None = None) -> None:
        self.resync = resync_seconds
        self.report = report
        self.resync_max = max(resync_seconds, resync_max_seconds or resync_seconds)
        self._wake: dict[Key, asyncio.Event] = {}
        self.waits: dict[Key, float] = {}  # how long each loop sleeps now unless woken (for probes and tests)

    def wake(self, key: Key) -> None:
        event = self._wake.get(key)
        if event is not None:
            event.set()

    async def _report(self, key: Key, err: Exception) -> str | None:
        if self.report is None:
            return None
        try:
            return await self.report(key, err)
        except Exception:  # reporting is advice: it must not take the loop down
            log.exception("could not report the failure of %s %s/%s", *key)
            return None

    def running(self) -> int:
        return len(self._wake)

    def held(self) -> dict[str, int]:
        """Loops and their timers, by namespace: an entry exists only while its loop runs."""
        counts: dict[str, int] = {}
        for _, namespace, _ in {*self._wake, *self.waits}:
            counts[namespace] = counts.get(namespace, 0) + 1
        return counts

    async def _log_failure(self, key: Key, err: Exception, failures: int, delay: float, last_error: str,
                           explanation: str | None) -> tuple[str, str | None]:
        """One warning per distinct failure it understands, INFO while it lasts; a traceback for anything else."""
        said = f"{type(err).__name__}: {err}"
        if said != last_error:
            last_error, explanation = said, await self._report(key, err)
            if explanation is not None:
                log.warning("reconciling %s %s/%s failed: %s; retrying in %.1fs", *key, explanation, delay)
        elif explanation is not None:
            log.info("reconciling %s %s/%s still fails (attempt %d): %s; retrying in %.1fs", *key, failures,
                     explanation, delay)
        if explanation is None:
            log.exception("reconciling %s %s/%s failed (attempt %d); retrying in %.1fs", *key, failures, delay)
        return last_error, explanation

    async def run(self, key: Key, reconcile: Callable[[], Awaitable[float | None]]) -> None:
        """Reconcile until the object is gone (or the loop is cancelled). `reconcile` returns how soon it wants to run
        again (None: resync)."""
        event = self._wake.setdefault(key, asyncio.Event())
        failures = 0
        quiet = 0  # resyncs in a row that no event woke and that found nothing in flight
        last_error = ""  # reported once, not every retry
        explanation: str | None = None  # of last_error
        metrics.loop_started(key)
        try:
            while True:
                event.clear()
                started = time.monotonic()
                try:
                    delay = await reconcile()
                    metrics.reconciled(key, time.monotonic() - started, None)
                    failures, last_error, explanation = 0, "", None
                except Gone:
                    metrics.reconciled(key, time.monotonic() - started, None)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # a bug, an API outage, a missing permission: back off, never stop
                    metrics.reconciled(key, time.monotonic() - started, err)
                    failures += 1
                    if kubernetes_api.is_conflict(err):
                        # A write conditional on what the pass read (its resourceVersion) lost to another writer:
                        # decide again on fresh state, soon. Normal under concurrency: logged only if it persists.
                        delay = min(0.05 * 2 ** failures, self.resync)
                        log.log(logging.INFO if failures > 3 else logging.DEBUG,
                                "%s %s/%s changed under its pass (attempt %d): %s; again in %.2fs", *key, failures,
                                err, delay)
                    else:
                        delay = min(0.5 * 2 ** failures, self.resync)
                        last_error, explanation = await self._log_failure(key, err, failures, delay, last_error,
                                                                          explanation)
                if delay is None:
                    timeout = min(self.resync * 2 ** quiet, self.resync_max)
                else:
                    timeout, quiet = delay, 0
                self.waits[key] = timeout
                try:
                    async with asyncio.timeout(timeout):  # unlike wait_for (3.11), never loses a cancellation
                        await event.wait()
                    quiet = 0
                except TimeoutError:
                    if delay is None:
                        quiet = min(quiet + 1, 16)
        finally:
            metrics.loop_ended(key)
            if self._wake.get(key) is event:
                del self._wake[key]
                self.waits.pop(key, None)
