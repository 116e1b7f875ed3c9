"""A failed provider call as a ProviderError: what is retried, what the error says."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from agentflow_jobs.providers.failures import (
    code_for_status,
    gave_up,
    is_retryable_status,
    parse_retry_after,
    status_failure,
    transport_failure,
)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time five hours off UTC (CI runs in UTC, where a date read as
    local time would be right by chance)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000"])
def test_a_retry_after_date_ahead_is_the_seconds_until_it(zone: str, new_york: None) -> None:
    ahead = email.utils.formatdate(time.time() + 30, usegmt=True).replace("GMT", zone)
    seconds = parse_retry_after({"retry-after": ahead})
    assert seconds is not None and 28 <= seconds <= 31  # "-0000" is UTC too, not local time


@pytest.mark.parametrize(
    ("status", "retryable", "code"),
    [(429, True, "rate_limited"), (500, True, "provider_error"), (503, True, "provider_error"),
     (408, True, "timeout"), (409, True, "provider_error"), (400, False, "bad_request"),
     (404, False, "bad_request"), (422, False, "bad_request"), (401, False, "auth"), (403, False, "auth")],
)
def test_status_decisions(status: int, retryable: bool, code: str) -> None:
    assert is_retryable_status(status) is retryable
    assert code_for_status(status) == code


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        # OpenAI: a 429 like a rate limit, but no wait refills an account with no credit
        (429, json.dumps({"error": {"message": "You exceeded your current quota, please check your plan "
                                    "and billing details.", "type": "insufficient_quota", "param": None,
                                    "code": "insufficient_quota"}}), "insufficient_quota"),
        (400, json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message":
                          "Your credit balance is too low to access the Anthropic API."}}), "insufficient_quota"),
        (402, json.dumps({"error": {"message": "Payment required", "code": 402}}), "insufficient_quota"),
        # a per-minute quota refills: it stays a rate limit, however it is worded
        (429, json.dumps({"error": {"message": "Quota exceeded for quota metric 'Generate Content API "
                                    "requests per minute'", "status": "RESOURCE_EXHAUSTED"}}), "rate_limited"),
        (429, json.dumps([{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message":
                           "You exceeded your current quota, please check your plan and billing details. "
                           "Quota exceeded for metric: generate_content_free_tier_requests, limit: 10. "
                           "Please retry in 15.2s."}}]), "rate_limited"),  # Gemini, per minute
        (429, json.dumps({"error": {"message": "Rate limit reached for requests"}}), "rate_limited"),
        # words in a quoted prompt are not the provider's: a validation error stays one
        (400, json.dumps({"detail": [{"msg": "extra fields not permitted", "input":
                          "customer says: insufficient funds, out of credits"}]}), "bad_request"),
    ],
)
def test_a_spent_account_is_told_from_a_rate_limit(status: int, body: str, code: str) -> None:
    error = status_failure(status, body, {}, where="provider p", secret=None)
    assert error.code == code
    assert error.retryable is (code == "rate_limited")
    if code == "insufficient_quota":
        assert "no quota or credit left" in error.message and "add credit" in error.message


def test_a_spent_account_that_says_when_to_come_back_is_a_rate_limit() -> None:
    body = json.dumps({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}})
    assert status_failure(429, body, {}, where="p", secret=None).code == "insufficient_quota"
    assert status_failure(429, body, {"retry-after": "20"}, where="p", secret=None).code == "rate_limited"


def test_status_error_has_a_short_excerpt_without_the_key() -> None:
    body = "invalid key sk-abc123456789 " + "x" * 1000
    error = status_failure(401, body, {}, where="provider http://h/v1", secret="sk-abc123456789")
    assert "sk-abc123456789" not in error.message
    assert error.message.startswith("provider http://h/v1 answered HTTP 401: invalid key ***")
    assert len(error.message) < 300


def test_transport_errors_are_retryable_and_classified() -> None:
    timeout = transport_failure(httpx.ReadTimeout("slow"), where="p", secret=None)
    assert (timeout.code, timeout.retryable) == ("timeout", True)
    broken = httpx.ConnectTimeout("mapped by the aiohttp transport")
    broken.__cause__ = ConnectionResetError("reset by peer")
    assert transport_failure(broken, where="p", secret=None).code == "provider_error"


def test_gave_up_keeps_the_code_and_counts_attempts() -> None:
    error = gave_up(status_failure(429, "", {"retry-after": "1"}, where="p", secret=None), 3)
    assert error.code == "rate_limited" and error.retryable is False
    assert error.message.endswith("(gave up after 3 attempts)")


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"error": {"message": "Invalid schema for response_format \'names\': In context=(), '
         "'additionalProperties' is required to be supplied and to be false. " + "More text. " * 20
         + 'The end.", "type": "invalid_request_error", "param": "response_format", "code": null}}',
         "The end. (param: response_format)"),
        ('{"error": "model \'llama9\' not found"}', "model 'llama9' not found"),
        ('{"detail": "max_tokens must be at least 1"}', "max_tokens must be at least 1"),
        ('{"object": "error", "message": "context length exceeded", "code": 400}', "context length exceeded"),
    ],
)
def test_the_providers_own_message_is_kept_whole(body: str, said: str) -> None:
    error = status_failure(400, body, {}, where="provider http://h/v1", secret=None)
    assert error.message.startswith("provider http://h/v1 answered HTTP 400: ")
    assert error.message.endswith(said)
    assert '{"error"' not in error.message


def test_a_message_is_redacted_before_it_is_cut() -> None:
    key = "sk-secret-0123456789abcdef"
    body = json.dumps({"error": {"message": "x" * 590 + key}})
    error = status_failure(401, body, {}, where="p", secret=key)
    assert "sk-secret" not in error.message and "***" in error.message
