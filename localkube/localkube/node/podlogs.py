"""Container logs kept like the kubelet keeps them: on disk, one file per container instance.

Each chunk read from a container's stdout or stderr is stored as CRI-style records,
`<RFC3339Nano arrival time> <stream> <F|P> <bytes>`, one per line (`P` marks a partial line: the chunk ended
before a newline). Files keep memory bounded however chatty a container is, arrival times serve `timestamps`,
`sinceSeconds` and `sinceTime`, and only the current and the previous instance are kept, which is what
`previous=true` can ask for.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from localkube.apiserver.errors import ApiError
from localkube.apiserver.server import LogOptions

CHUNK = 64 * 1024


def timestamp(moment: dt.datetime | None = None) -> str:
    """RFC3339 with nanoseconds and a fixed width (so records sort and compare as strings)."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(text: str) -> dt.datetime:
    """An RFC3339 time from a client (`sinceTime`), with any number of fractional digits."""
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("z", "Z")
    try:
        moment = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise ApiError(400, f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse')
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class InstanceLog:
    """The log of one container instance: appended by the output pumps, read by any number of clients."""

    def __init__(self, path: Path, container_id: str = "") -> None:
        self.path = path
        self.container_id = container_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the instance
        self._changed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, stream: str, data: bytes) -> None:
        if self._file is None or not data:
            return
        head = f"{timestamp()} {stream} ".encode()
        lines = data.split(b"\n")
        records = [head + b"F " + line + b"\n" for line in lines[:-1]]
        if lines[-1]:
            records.append(head + b"P " + lines[-1] + b"\n")
        self._file.write(b"".join(records))
        self._notify()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._notify()

    def changed(self) -> asyncio.Event:
        """An event set at the next write or close (take it *before* reading, then wait on it)."""
        return self._changed

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()


class ContainerLogs:
    """The current and previous instance logs of one container."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.current: InstanceLog | None = None
        self.previous: InstanceLog | None = None
        self._count = 0

    def new_instance(self, container_id: str = "") -> InstanceLog:
        if self.previous is not None:
            self.previous.close()
            with contextlib.suppress(OSError):
                self.previous.path.unlink()
        if self.current is not None:
            self.current.close()
        self.previous = self.current
        self._count += 1
        self.current = InstanceLog(self.directory / f"{self._count}.log", container_id)
        return self.current

    def find(self, container_id: str) -> InstanceLog | None:
        """The kept instance with this container ID (status names instances by ID, as the kubelet does)."""
        return next((log for log in (self.current, self.previous) if log and log.container_id == container_id), None)

    def close(self) -> None:
        for log in (self.current, self.previous):
            if log is not None:
                log.close()


def _render(record: bytes, timestamps: bool) -> bytes:
    ts, _stream, tag, content = record.rstrip(b"\n").split(b" ", 3)
    out = ts + b" " + content if timestamps else content
    return out if tag == b"P" else out + b"\n"


def _records(data: bytes, carry: bytearray) -> list[bytes]:
    """Whole records in `carry` + `data` (a record cut by the read size stays in `carry`)."""
    carry += data
    end = carry.rfind(b"\n")
    if end < 0:
        return []
    lines = bytes(carry[: end + 1]).splitlines(keepends=True)
    del carry[: end + 1]
    return lines


def _cutoff(options: LogOptions) -> bytes | None:
    moments = []
    if options.since_seconds is not None:
        moments.append(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=options.since_seconds))
    if options.since_time:
        moments.append(parse_time(options.since_time))
    return timestamp(max(moments)).encode() if moments else None


class _Tail:
    """The last `count` lines seen (a line is its partial records plus the full one ending it)."""

    def __init__(self, count: int) -> None:
        self.lines: deque[list[bytes]] = deque(maxlen=max(count, 0))
        self.pending: list[bytes] = []
        self.count = count

    def add(self, record: bytes) -> None:
        self.pending.append(record)
        if record.split(b" ", 3)[2] == b"F":
            self.lines.append(self.pending)
            self.pending = []

    def records(self) -> list[bytes]:
        if self.pending and self.count > 0:
            self.lines.append(self.pending)
        return [r for line in self.lines for r in line]


async def read_log(log: InstanceLog, options: LogOptions) -> AsyncIterator[bytes]:
    """The bytes `kubectl logs` shows for one instance, honouring the options; `follow` ends when it closes.

    The file is read in blocks, so memory stays bounded by the block size (plus `tailLines` lines).
    """
    cutoff = _cutoff(options)
    budget = options.limit_bytes
    tail = _Tail(options.tail_lines) if options.tail_lines is not None else None
    carry = bytearray()
    with open(log.path, "rb") as f:  # noqa: ASYNC230 - a local file read in small blocks
        while True:
            changed, closed = log.changed(), log.closed
            data = f.read(CHUNK)
            records = _records(data, carry) if data else []
            if cutoff is not None:
                records = [r for r in records if r[: len(cutoff)] >= cutoff]
            if tail is not None:  # tailLines applies to what exists now; what follows streams as it comes
                for record in records:
                    tail.add(record)
                if data:
                    continue
                records, tail = tail.records(), None
            out = b"".join(_render(r, options.timestamps) for r in records)
            if budget is not None:
                out = out[:budget]
                budget -= len(out)
            if out:
                yield out
            if budget is not None and budget <= 0:
                return
            if data:
                await asyncio.sleep(0)  # let others run while a big log streams
                continue
            if not options.follow or closed:
                return
            await changed.wait()
