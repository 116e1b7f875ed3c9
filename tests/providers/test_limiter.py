"""The shared limiter: in-flight cap, RPM pacing, TPM reservations, AIMD on 429."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.limiter import Limiter
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import make_provider, request


def burst(base_url: str, count: int, **options: Any) -> tuple[list[Any], Any]:
    """Send ``count`` requests at once through one provider; results or errors, and it."""
    provider = make_provider(base_url, **options)

    async def run() -> list[Any]:
        try:
            jobs = [provider.chat(request(f"item {i}")) for i in range(count)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await provider.aclose()

    return asyncio.run(run()), provider


def test_never_more_than_the_concurrency_in_flight(fake_provider: FakeProvider) -> None:
    fake_provider.script(latency_ms=40)
    results, _ = burst(fake_provider.base_url, 24, concurrency=4)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake_provider.stats()["max_in_flight"] == 4
    assert fake_provider.count == 24


def test_requests_per_minute_are_paced(fake_provider: FakeProvider) -> None:
    # the fake allows 20 per 0.93 s; the limiter starts at most 20 per 1 s (rpm 1200)
    fake_provider.script(rpm=1300, rpm_window_s=0.93)
    started = time.monotonic()
    results, _ = burst(fake_provider.base_url, 30, requests_per_minute=1200, max_attempts=1)
    elapsed = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake_provider.stats()["by_status"] == {"200": 30}
    assert elapsed >= 0.9


def test_without_pacing_the_same_burst_is_rate_limited(fake_provider: FakeProvider) -> None:
    fake_provider.script(rpm=1300, rpm_window_s=0.93)
    results, _ = burst(fake_provider.base_url, 30, max_attempts=1)
    errors = [r for r in results if isinstance(r, ProviderError)]
    assert len(errors) == 10 and {e.code for e in errors} == {"rate_limited"}


def test_a_429_halves_the_concurrency(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=429, retry_after=0.01, times=1)
    fake_provider.script(latency_ms=40)
    provider = make_provider(fake_provider.base_url, concurrency=8)

    async def run() -> None:
        try:
            await provider.chat(request("first"))  # 429, then retried
            assert provider.limiter.limit == 4
            await asyncio.gather(*(provider.chat(request(f"item {i}")) for i in range(12)))
        finally:
            await provider.aclose()

    asyncio.run(run())
    assert fake_provider.stats()["max_in_flight"] <= 5  # 4, maybe one recovered step


def test_aimd_cuts_once_per_window_and_recovers_slowly() -> None:
    async def run() -> None:
        limiter = Limiter(concurrency=16, recover_after=3)
        async with limiter.slot() as early, limiter.slot() as late:
            limiter.on_rate_limited(early)
            limiter.on_rate_limited(late)  # same window: no second cut
        assert limiter.limit == 8
        async with limiter.slot() as fresh:
            limiter.on_rate_limited(fresh)
        assert limiter.limit == 4
        for _ in range(6):
            limiter.on_success()
        assert limiter.limit == 6

    asyncio.run(run())


def test_tokens_per_minute_reserve_then_settle() -> None:
    async def run() -> tuple[float, float]:
        limiter = Limiter(tokens_per_minute=600)  # 10 tokens/s, bucket of 600
        async with limiter.slot(tokens=580) as permit:
            limiter.settle(permit, 20)  # used far less than reserved: refunded
        started = time.monotonic()
        async with limiter.slot(tokens=500):
            pass
        refunded = time.monotonic() - started
        started = time.monotonic()
        async with limiter.slot(tokens=86):  # ~80 left: a debt of ~6 tokens, ~0.6 s
            pass
        return refunded, time.monotonic() - started

    refunded, waited = asyncio.run(run())
    assert refunded < 0.1
    assert waited >= 0.3


def test_cancelled_waiters_do_not_leak_slots() -> None:
    async def run() -> int:
        limiter = Limiter(concurrency=1)
        async with limiter.slot():
            waiter = asyncio.create_task(_hold(limiter))
            await asyncio.sleep(0.01)
            waiter.cancel()
        async with limiter.slot():
            pass
        return limiter.in_flight

    assert asyncio.run(run()) == 0


async def _hold(limiter: Limiter) -> None:
    async with limiter.slot():
        await asyncio.sleep(10)
