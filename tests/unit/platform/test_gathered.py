"""Gathered writes: ids added close together are one write, a failed write loses nothing, and a
clean stop writes what is still waiting."""

from __future__ import annotations

import asyncio

import pytest

from sandwich.platform import gathered
from sandwich.platform.gathered import GatheredWrites

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.writes: list[list[int]] = []
        self.failures = failures

    async def write(self, ids: list[int]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database away")
        self.writes.append(ids)


async def until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_ids_added_within_the_linger_are_one_write_in_order() -> None:
    recorder = Recorder()
    marks = GatheredWrites("test", recorder.write, linger_seconds=0.05)
    marks.start()
    try:
        marks.add([1, 2])
        marks.add([])
        marks.add([3])
        await until(lambda: recorder.writes)
        marks.add([4])
        await until(lambda: len(recorder.writes) == 2)
    finally:
        await marks.stop()
    assert recorder.writes == [[1, 2, 3], [4]]


async def test_a_failed_write_keeps_its_ids_for_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gathered, "RETRY_SECONDS", 0.01)
    recorder = Recorder(failures=2)
    marks = GatheredWrites("test", recorder.write, linger_seconds=0.01)
    marks.start()
    try:
        marks.add([1])
        await asyncio.sleep(0.005)
        marks.add([2])
        await until(lambda: recorder.writes)
    finally:
        await marks.stop()
    assert [i for write in recorder.writes for i in write] == [1, 2]
    assert marks.waiting == 0


async def test_a_clean_stop_writes_what_is_still_waiting() -> None:
    recorder = Recorder()
    marks = GatheredWrites("test", recorder.write, linger_seconds=30.0)
    marks.start()
    marks.add([7, 8])
    await asyncio.sleep(0.05)
    assert recorder.writes == []  # still gathering
    await marks.stop()
    assert recorder.writes == [[7, 8]]
