"""A stand-in for the program of the Kubernetes pause image: hold the pod open, do nothing, stop when asked.

The real `/pause` exits 0 at once on SIGTERM or SIGINT, which lets a pod of it be deleted without waiting for
its grace period; this one does the same.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    if argv[:1] == ["-v"]:
        print("pause (LocalKube stand-in)")
        return 0
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
