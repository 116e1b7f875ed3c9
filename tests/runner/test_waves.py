"""Sync mode starts its workers in waves, so the first requests leave while the rest are
still being built, and a run cancelled while starting leaves no worker behind."""

from __future__ import annotations

import asyncio

import pytest

from agentflow_jobs.runner.sync_mode import WAVES, _start_in_waves


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
    await asyncio.gather(*await _start_in_waves(worker, count))
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
        starting = asyncio.ensure_future(_start_in_waves(worker, 256))
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
