"""Sync mode starts its workers in waves spread over the first answer's wait, so the
first requests leave while the rest are still being built and the answers do not all
come back at once; the first answer starts the rest; a run cancelled while starting
leaves no worker behind."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agentflow_jobs.runner.sync_mode import SPREAD_PER_WORKER, WAVES, _start_in_waves


async def _turns(count: int) -> tuple[list[int], list[int]]:
    """The loop turn each worker started on, and the turn each had sent by (its first
    await), for ``count`` workers."""
    turn = 0
    started: list[int] = []
    sent: list[int] = []

    def tick() -> None:
        nonlocal turn
        turn += 1
        loop.call_soon(tick)

    async def worker() -> None:
        started.append(turn)
        await asyncio.sleep(0)  # a request on its way
        sent.append(turn)

    loop = asyncio.get_running_loop()
    loop.call_soon(tick)
    await asyncio.gather(*await _start_in_waves(worker, count, asyncio.Event()))
    return started, sent


def test_the_workers_start_in_waves() -> None:
    started, sent = asyncio.run(_turns(256))
    assert len(started) == 256
    assert len(set(started)) == WAVES  # 16 waves of 16
    assert started.count(min(started)) == 256 // WAVES
    # the first wave is on its way before the last wave has started
    assert min(sent) < max(started)


def test_fewer_workers_than_waves_start_one_at_a_time() -> None:
    started, _ = asyncio.run(_turns(3))
    assert len(started) == 3 and len(set(started)) == 3


def test_a_run_cancelled_while_starting_leaves_no_worker_running() -> None:
    finished: list[int] = []

    async def worker() -> None:
        await asyncio.sleep(0.05)
        finished.append(1)

    async def main() -> None:
        starting = asyncio.ensure_future(_start_in_waves(worker, 256, asyncio.Event()))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        await asyncio.sleep(0.1)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    asyncio.run(main())
    assert finished == []


async def _starts(count: int, answer_after: float | None) -> list[tuple[float, int]]:
    """When each of ``count`` workers started (seconds from the first, and the loop turn);
    the first worker's request is answered after ``answer_after`` seconds (None: no
    answer while they start)."""
    loop = asyncio.get_running_loop()
    answered = asyncio.Event()
    starts: list[tuple[float, int]] = []
    turn = 0

    def tick() -> None:
        nonlocal turn
        turn += 1
        if not done:
            loop.call_soon(tick)

    async def worker() -> None:
        first = not starts
        starts.append((loop.time(), turn))
        if first and answer_after is not None:
            await asyncio.sleep(answer_after)
            answered.set()

    done = False
    loop.call_soon(tick)
    await asyncio.gather(*await _start_in_waves(worker, count, answered))
    done = True
    return [(t - starts[0][0], n) for t, n in starts]


def _waves(starts: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(when, loop turn) of each wave: the workers started on one turn of the loop."""
    first: dict[int, float] = {}
    for t, turn in starts:
        first.setdefault(turn, t)
    return sorted((t, turn) for turn, t in first.items())


def test_with_no_answer_yet_the_waves_spread_over_half_a_millisecond_a_worker() -> None:
    waves = [t for t, _ in _waves(asyncio.run(_starts(256, None)))]
    assert len(waves) == WAVES
    spacing = SPREAD_PER_WORKER * 256 / WAVES  # 8 ms
    assert all(later - earlier >= spacing * 0.9 for earlier, later in itertools.pairwise(waves))


def test_the_first_answer_starts_the_rest_at_once() -> None:
    starts = asyncio.run(_starts(256, 0.05))
    assert len(starts) == 256
    waves = _waves(starts)
    assert len(waves) == WAVES
    before = [t for t, _ in waves if t < 0.05]
    assert len(before) >= 2  # 8 ms apart (~7 of them) while no answer had come
    spacing = SPREAD_PER_WORKER * 256 / WAVES
    assert all(later - earlier >= spacing * 0.9 for earlier, later in itertools.pairwise(before))
    after = [turn for t, turn in waves if t >= 0.05]
    assert after and after[-1] - after[0] <= 2 * (len(after) - 1)  # a turn or two apart
