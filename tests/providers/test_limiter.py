"""The shared limiter: in-flight cap, RPM pacing, TPM reservations, AIMD on 429, and
what the provider's own rate-limit headers and 429s say (exhausted bucket or stray)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.limiter import (
    BLIND_PAUSE_MAX_S,
    BLIND_PAUSE_S,
    Limiter,
)
from agentflow_jobs.providers.ratelimits import Bucket, RateHeaders
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
    # the fake allows 20 per 0.93 s; the limiter starts one every ~52 ms (rpm 1200 less 3 %)
    fake_provider.script(rpm=1300, rpm_window_s=0.93)
    started = time.monotonic()
    results, _ = burst(fake_provider.base_url, 30, requests_per_minute=1200, max_attempts=1)
    elapsed = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake_provider.stats()["by_status"] == {"200": 30}
    assert elapsed >= 0.9


def test_pacing_at_the_providers_own_limit_gets_no_429s(fake_provider: FakeProvider) -> None:
    # Same rpm on both sides, the fake counting a sliding 1 s window at arrival: starts
    # spread evenly a little under the limit fit; a per-second burst of 100 would not.
    provider = make_provider(fake_provider.base_url, requests_per_minute=6000, concurrency=64)

    async def run() -> list[Any]:
        try:
            # a cold first connection holds the first starts ~30 ms and they arrive
            # together: a whole pacing step of jitter in a 1 s window (noise in a minute)
            await provider.chat(request("warm-up"))
            await asyncio.to_thread(fake_provider.reset)
            await asyncio.to_thread(lambda: fake_provider.script(rpm=6000, rpm_window_s=1.0))
            jobs = [provider.chat(request(f"item {i}")) for i in range(150)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await provider.aclose()

    results = asyncio.run(run())
    assert not [r for r in results if isinstance(r, BaseException)]
    stats = fake_provider.stats()
    assert stats["by_status"] == {"200": 150}
    assert stats["requests"] == 150


# a 429 whose headers show the request bucket spent, as OpenAI sends it
EXHAUSTED = {"x-ratelimit-limit-requests": "6000", "x-ratelimit-remaining-requests": "0",
             "x-ratelimit-reset-requests": "1s"}
SPENT_BODY = "Rate limit reached for fake-model on requests per min (RPM): Limit 6000, Used 6000"


def test_an_exhausted_bucket_pauses_every_start_and_they_resume_paced(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=429, retry_after=1.0, times=1, headers=EXHAUSTED)  # the first request only
    fake_provider.script(rpm=6000, rpm_window_s=1.0)
    provider = make_provider(fake_provider.base_url, requests_per_minute=6000, concurrency=64)

    def count_when_refused() -> int:
        while "429" not in fake_provider.stats()["by_status"]:
            time.sleep(0.002)
        return fake_provider.count

    async def run() -> tuple[int, int, list[Any]]:
        try:
            jobs = asyncio.gather(*(provider.chat(request(f"item {i}")) for i in range(60)),
                                  return_exceptions=True)
            # from the refusal on, however late it came back (a loaded machine)
            refused = await asyncio.to_thread(count_when_refused)
            await asyncio.sleep(0.6)  # within the second's pause
            during = await asyncio.to_thread(lambda: fake_provider.count)
            return refused, during, await jobs
        finally:
            await provider.aclose()

    refused, during, results = asyncio.run(run())
    assert not [r for r in results if isinstance(r, BaseException)]
    # at most a start or two already on its way when the 429 was read; paced, ~55 would go
    assert during - refused <= 2
    # after the pause the queued starts come back one step apart, not as a herd the
    # provider's own limit would refuse: the scripted 429 is the only one
    assert fake_provider.stats()["by_status"] == {"429": 1, "200": 60}


def test_without_rpm_the_restart_after_a_pause_is_spread() -> None:
    async def run() -> list[float]:
        limiter = Limiter(concurrency=8)
        limiter.on_rate_limited(retry_after=0.2)  # the limit halves to 4
        resumed = time.monotonic() + 0.2
        starts: list[float] = []

        async def one() -> None:
            async with limiter.slot():
                starts.append(time.monotonic() - resumed)

        await asyncio.gather(*(one() for _ in range(4)))
        return sorted(starts)

    starts = asyncio.run(run())
    assert starts[0] >= -0.01  # nothing before the pause ends
    assert starts[-1] - starts[0] >= 0.1  # four starts over ~0.2 s, not all at once


def test_without_pacing_the_same_burst_is_rate_limited(fake_provider: FakeProvider) -> None:
    fake_provider.script(rpm=1300, rpm_window_s=0.93)
    results, _ = burst(fake_provider.base_url, 30, max_attempts=1)
    errors = [r for r in results if isinstance(r, ProviderError)]
    assert len(errors) == 10 and {e.code for e in errors} == {"rate_limited"}


def test_a_stray_429_delays_only_its_own_request(fake_provider: FakeProvider) -> None:
    # no headers, no spent limit named: an overloaded server turning one request away
    fake_provider.script(status=429, retry_after=1.0, times=1)
    provider = make_provider(fake_provider.base_url, concurrency=64)

    async def run() -> tuple[int, list[Any]]:
        try:
            jobs = asyncio.gather(*(provider.chat(request(f"item {i}")) for i in range(60)),
                                  return_exceptions=True)
            await asyncio.sleep(0.5)  # while the refused request waits its Retry-After
            during = await asyncio.to_thread(lambda: fake_provider.count)
            return during, await jobs
        finally:
            await provider.aclose()

    during, results = asyncio.run(run())
    assert not [r for r in results if isinstance(r, BaseException)]
    assert during == 60  # every other request went; only the refused one waits
    assert fake_provider.stats()["by_status"] == {"429": 1, "200": 60}
    assert provider.limiter.limit == 63  # nudged down by one, not halved


def test_a_spent_limit_named_in_the_body_halves_the_concurrency(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=429, retry_after=0.01, times=1, body=SPENT_BODY)
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


def test_a_spent_limit_that_names_no_wait_still_pauses_every_start(fake_provider: FakeProvider) -> None:
    # a gateway's "rate limit exceeded" with no Retry-After and no x-ratelimit-* headers
    fake_provider.script(status=429, times=1, body=SPENT_BODY)
    provider = make_provider(fake_provider.base_url, concurrency=8)

    def refused() -> None:
        while "429" not in fake_provider.stats()["by_status"]:
            time.sleep(0.002)

    async def run() -> int:
        try:
            first = asyncio.ensure_future(provider.chat(request("first")))
            await asyncio.to_thread(refused)  # however late it comes on a loaded machine
            await asyncio.sleep(0.05)  # the client has read it: every start waits BLIND_PAUSE_S
            others = asyncio.gather(*(provider.chat(request(f"item {i}")) for i in range(6)))
            await asyncio.sleep(0.5)
            during = await asyncio.to_thread(lambda: fake_provider.count)
            await first
            await others
            return during
        finally:
            await provider.aclose()

    assert asyncio.run(run()) == 1
    assert fake_provider.stats()["by_status"] == {"429": 1, "200": 7}


def test_a_blind_pause_doubles_while_the_bucket_stays_spent_and_resets_once_it_refills() -> None:
    async def run() -> None:
        now = [100.0]
        limiter = Limiter(concurrency=256, clock=lambda: now[0])
        waits = []
        for _ in range(7):
            async with limiter.slot() as permit, limiter.slot() as earlier:
                limiter.on_rate_limited(permit)
                limiter.on_rate_limited(earlier)  # the same window: no second doubling
            waits.append(limiter._paused_until - now[0])
            now[0] = limiter._paused_until
        assert waits == [BLIND_PAUSE_S, 2, 4, 8, 16, BLIND_PAUSE_MAX_S, BLIND_PAUSE_MAX_S]
        limiter.on_success(earlier)  # started before the last pause: says nothing of the bucket
        async with limiter.slot() as permit:
            limiter.on_rate_limited(permit)
        assert limiter._paused_until - now[0] == BLIND_PAUSE_MAX_S
        now[0] = limiter._paused_until
        async with limiter.slot() as after:
            limiter.on_success(after)  # started after it and answered: the bucket refilled
        async with limiter.slot() as permit:
            limiter.on_rate_limited(permit)
        assert limiter._paused_until - now[0] == BLIND_PAUSE_S

    asyncio.run(run())


def test_a_long_pause_is_logged_once() -> None:
    # Groq's request headers count per day: spent, they reset in hours, and a run that
    # stops sending for so long must say why
    async def observe(limiter: Limiter, *buckets: Bucket) -> None:
        async with limiter.slot():  # a reply's headers are read while its request holds a place
            for bucket in buckets:
                limiter.observe(RateHeaders(bucket, None))

    limiter = Limiter(concurrency=8)
    spent = Bucket(14400, 0, 7 * 3600.0)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(observe(limiter, spent, spent))  # the same pause twice: said once
    assert 7 * 3600 - 60 <= limiter._paused_until - time.monotonic() <= 7 * 3600
    assert [(e["event"], e["seconds"], e["why"]) for e in logs] == [
        ("requests to the provider paused", 7 * 3600, "its rate-limit headers show too little left")]
    quiet = Limiter(concurrency=8)
    with structlog.testing.capture_logs() as logs:
        asyncio.run(observe(quiet, Bucket(600, 0, 0.5)))  # a short pause is nothing to say
    assert quiet._paused_until and logs == []


def test_the_providers_headers_set_the_pace_when_no_rpm_is_configured(fake_provider: FakeProvider) -> None:
    # the fake allows 20 per 0.5 s and says so in x-ratelimit-*-requests on every reply
    fake_provider.script(rpm=2400, rpm_window_s=0.5)
    results, provider = burst(fake_provider.base_url, 50, concurrency=8, max_attempts=1)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake_provider.stats()["by_status"] == {"200": 50}
    assert provider.limiter.requests_per_minute == 2400


def test_without_headers_the_same_burst_is_rate_limited(fake_provider: FakeProvider) -> None:
    fake_provider.script(rpm=2400, rpm_window_s=0.5, rate_headers=False)
    results, _ = burst(fake_provider.base_url, 50, concurrency=8, max_attempts=1)
    assert {e.code for e in results if isinstance(e, ProviderError)} == {"rate_limited"}


def test_aimd_cuts_once_per_window_and_recovers_slowly() -> None:
    async def run() -> None:
        limiter = Limiter(concurrency=16, recover_after=3)
        async with limiter.slot() as stray, limiter.slot() as other:
            limiter.on_rate_limited(stray, 1.0, exhausted=False)
            limiter.on_rate_limited(other, 1.0, exhausted=False)  # same window: no second nudge
        assert limiter.limit == 15 and not limiter._paused_until
        for _ in range(15):
            limiter.on_success()
        assert limiter.limit == 16
        async with limiter.slot() as early, limiter.slot() as late:  # Retry-After: 0
            limiter.on_rate_limited(early, 0.0)
            limiter.on_rate_limited(late, 0.0)  # same window: no second cut
        assert limiter.limit == 8
        async with limiter.slot() as fresh:
            limiter.on_rate_limited(fresh, 0.0)
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


def test_starts_still_waiting_for_their_pace_do_not_count_against_what_remains() -> None:
    # 64 places held, one request sent: 5 remaining is room enough (counting the places
    # paused the conformance benchmark at 91 % of its limit)
    async def run() -> tuple[float, float]:
        limiter = Limiter(concurrency=64, requests_per_minute=600)
        async with limiter.slot():
            waiting = [asyncio.create_task(_hold(limiter)) for _ in range(63)]
            await asyncio.sleep(0.01)
            limiter.observe(RateHeaders(Bucket(600.0, 5.0, 1.0), None))
            roomy = limiter._paused_until
            limiter.observe(RateHeaders(Bucket(600.0, 0.0, 1.0), None))
            spent = limiter._paused_until
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        return roomy, spent

    roomy, spent = asyncio.run(run())
    assert roomy == 0.0 and spent > 0.0
