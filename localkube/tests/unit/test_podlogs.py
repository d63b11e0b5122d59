"""Log files: record format, tail by lines (partial lines included), limits, since and follow."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from localkube.apiserver.errors import ApiError
from localkube.apiserver.server import LogOptions
from localkube.node.podlogs import ContainerLogs, InstanceLog, parse_time, read_log, timestamp


async def collect(log: InstanceLog, **options: object) -> bytes:
    return b"".join([chunk async for chunk in read_log(log, LogOptions(**options))])  # type: ignore[arg-type]


async def test_lines_partials_and_tail(tmp_path: Path) -> None:
    log = InstanceLog(tmp_path / "1.log")
    log.write("stdout", b"a\nb\npar")
    log.write("stderr", b"tial\nc\n")
    log.write("stdout", b"no newline")
    log.close()
    assert await collect(log) == b"a\nb\npartial\nc\nno newline"
    assert await collect(log, tail_lines=2) == b"c\nno newline"
    assert await collect(log, tail_lines=3) == b"partial\nc\nno newline"
    assert await collect(log, tail_lines=0) == b""
    assert await collect(log, limit_bytes=3) == b"a\nb"
    stamped = await collect(log, timestamps=True, tail_lines=1)
    assert stamped.endswith(b" no newline") and len(stamped.split(b" ", 1)[0]) == 30


async def test_since(tmp_path: Path) -> None:
    log = InstanceLog(tmp_path / "1.log")
    log.write("stdout", b"old\n")
    log.close()
    assert await collect(log, since_seconds=60) == b"old\n"
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await collect(log, since_time=future) == b""
    with pytest.raises(ApiError):
        await collect(log, since_time="yesterday")


async def test_follow_ends_when_the_instance_closes(tmp_path: Path) -> None:
    log = InstanceLog(tmp_path / "1.log")
    log.write("stdout", b"first\n")
    chunks: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_log(log, LogOptions(follow=True)):
            chunks.append(chunk)

    task = asyncio.create_task(follow())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not chunks:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    log.write("stdout", b"second\n")
    log.close()
    await asyncio.wait_for(task, 5)
    assert b"".join(chunks) == b"first\nsecond\n"


def test_two_instances_are_kept(tmp_path: Path) -> None:
    logs = ContainerLogs(tmp_path)
    first = logs.new_instance("a")
    second = logs.new_instance("b")
    third = logs.new_instance("c")
    assert not first.path.exists() and second.path.exists() and third.path.exists()
    assert logs.find("b") is second and logs.find("a") is None and logs.current is third
    logs.close()


def test_time_formats() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    assert timestamp(moment) == "2024-05-06T07:08:09.123456000Z"
    assert parse_time("2024-05-06T07:08:09.123456789Z") == moment
    assert parse_time("2024-05-06T09:08:09+02:00") == moment.replace(microsecond=0)


async def test_big_logs_are_read_in_blocks(tmp_path: Path) -> None:
    log = InstanceLog(tmp_path / "1.log")
    lines = [f"line {i}\n".encode() for i in range(20_000)]
    for start in range(0, len(lines), 100):
        log.write("stdout", b"".join(lines[start:start + 100]))
    log.write("stdout", b"x" * 200_000 + b"\n")
    log.close()
    chunks = [chunk async for chunk in read_log(log, LogOptions())]
    assert len(chunks) > 2, "streamed in several blocks"
    assert b"".join(chunks) == b"".join(lines) + b"x" * 200_000 + b"\n"
    assert await collect(log, tail_lines=2) == lines[-1] + b"x" * 200_000 + b"\n"
