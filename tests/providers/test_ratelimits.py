"""Reading a provider's rate-limit headers, and telling an exhausted bucket from a stray 429."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from agentflow_jobs.providers.ratelimits import Bucket, is_exhausted, parse_reset, read_headers


def test_openai_headers_give_both_buckets() -> None:
    rates = read_headers({
        "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
    })
    assert rates is not None
    assert rates.requests == Bucket(500.0, 499.0, pytest.approx(0.12))
    assert rates.tokens == Bucket(30000.0, 0.0, 360.0)
    assert rates.exhausted and rates.reset_s() == 360.0


def test_anthropic_headers_take_the_tightest_token_bucket() -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    rates = read_headers({
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "12",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "900",
        "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": reset,
    })
    assert rates is not None and rates.requests is not None and rates.tokens is not None
    assert rates.requests.remaining == 12 and 25 < (rates.requests.reset_s or 0) <= 30
    assert rates.tokens.limit == 8000 and rates.exhausted


def test_a_reply_without_rate_headers_reads_as_none() -> None:
    assert read_headers({"content-type": "application/json"}) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3s", 3723.0), ("1.5", 1.5), ("0.250s", 0.25),
     ("soon", None), ("", None)],
)
def test_reset_values(value: str, seconds: float | None) -> None:
    assert parse_reset(value) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_reset_time_in_the_past_is_now() -> None:
    past = datetime.fromtimestamp(time.time() - 5, UTC).isoformat()
    assert parse_reset(past) == 0.0


@pytest.mark.parametrize(
    "body",
    [
        "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500, Used 500,"
        " Requested 1.",
        "Number of request tokens has exceeded your per-minute rate limit",
        "Requests to the ChatCompletions_Create Operation have exceeded token rate limit of your current tier",
        "You exceeded your current quota, please check your plan and billing details.",
        "Rate limit reached for requests",
    ],
)
def test_a_429_naming_a_spent_limit_is_an_exhausted_bucket(body: str) -> None:
    assert is_exhausted(None, body)


@pytest.mark.parametrize(
    "body", ["fake provider scripted status 429", "The server is overloaded, please try again", "Too Many Requests"]
)
def test_a_429_naming_no_limit_is_a_stray(body: str) -> None:
    assert not is_exhausted(None, body)
    with_room = read_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "250"})
    assert not is_exhausted(with_room, body)


def test_headers_at_zero_make_any_429_an_exhausted_bucket() -> None:
    spent = read_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0"})
    assert is_exhausted(spent, "Too Many Requests")
