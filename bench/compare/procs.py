"""Every process the harness starts (floors, operators, runners), so that none outlives it.

Each starts in a session of its own (its children, such as a nanny's worker, share its process group) and is
recorded here until it ends. SIGINT and SIGTERM first signal every recorded group (SIGTERM, SIGKILL after a grace
period), then unwind the harness as usual; `reap` also runs at exit. On Linux each process started from the main
thread (operators, runners) also gets `PR_SET_PDEATHSIG`, so that it dies even with a SIGKILLed harness.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

GRACE = 5.0
_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1
_groups: set[int] = set()
_lock = threading.Lock()
# Set once the harness is told to stop: waits in worker threads (the floors) give up at once.
stopping = threading.Event()


def _die_with_parent(parent: int) -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)


def popen_kwargs() -> dict[str, Any]:
    """For `subprocess.Popen` and `asyncio.create_subprocess_exec`: a group of its own that dies with us."""
    parent = os.getpid()
    # PDEATHSIG follows the thread that forks: only ask for it from the main thread (worker threads end early).
    if threading.current_thread() is threading.main_thread():
        return {"start_new_session": True, "preexec_fn": lambda: _die_with_parent(parent)}
    return {"start_new_session": True}


def track(pid: int) -> None:
    with _lock:
        _groups.add(pid)


def untrack(pid: int) -> None:
    with _lock:
        _groups.discard(pid)


def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, **popen_kwargs(), **kwargs)
    track(proc.pid)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """SIGTERM its group, SIGKILL whatever is left after `grace`."""
    _signal(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    _signal(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    untrack(proc.pid)


def _signal(group: int, sig: int) -> bool:
    try:
        os.killpg(group, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_until(check: Callable[[], bool], limit: float, what: str, every: float = 0.02) -> None:
    """For worker threads: poll `check` until true; TimeoutError after `limit`, InterruptedError once stopping."""
    deadline = time.monotonic() + limit
    while not check():
        if stopping.is_set():
            raise InterruptedError("the harness is stopping")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {limit:.0f} s")
        time.sleep(every)


def reap_group(group: int) -> None:
    """SIGKILL what is left in a group whose leader has ended, and forget it."""
    _signal(group, signal.SIGKILL)
    untrack(group)


def reap(grace: float = GRACE) -> None:
    """Every group still recorded: SIGTERM, then SIGKILL after `grace`."""
    with _lock:
        groups = list(_groups)
        _groups.clear()
    alive = [g for g in groups if _signal(g, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [g for g in alive if _signal(g, 0)]
    for group in alive:
        _signal(group, signal.SIGKILL)


def install() -> None:
    """Reap on SIGINT, SIGTERM and at exit; then unwind (KeyboardInterrupt) so the harness closes LocalKube."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopping.set()
        print(f"\n{signal.Signals(signum).name}: stopping every process the harness started", file=sys.stderr,
              flush=True)
        reap()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    atexit.register(reap)
