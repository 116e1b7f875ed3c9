"""The one retry policy: how long to wait after a failed attempt."""

from __future__ import annotations

import random

from agentflow_jobs.backoff import RetryPolicy


def test_backoff_is_full_jitter_under_a_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, rng=random.Random(1))
    delays = [policy.delay(attempt) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(50)]
    assert all(0.0 <= d <= 5.0 for d in delays)
    assert max(policy.delay(1) for _ in range(200)) <= 1.0
    assert max(delays) > 3.0  # grows exponentially up to the cap


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=3600.0) == 10.0


def test_a_fixed_schedule_without_jitter_waits_each_step_whole() -> None:
    policy = RetryPolicy(schedule=(0.2, 0.5, 1.0), jitter=False)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4, 5)] == [0.2, 0.5, 1.0, 1.0, 1.0]


def test_the_doubling_starts_at_the_base_delay_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0)
    assert [policy.step(attempt) for attempt in (1, 2, 3, 5, 6, 9)] == [1.0, 2.0, 4.0, 16.0, 30.0, 30.0]
