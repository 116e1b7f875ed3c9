"""The Anthropic fake itself: it refuses what the real API refuses, answers in its shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.anthropic import FakeAnthropic, FakeAnthropicProcess

HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}


def post(fake: Any, body: dict[str, Any], headers: dict[str, str] = HEADERS) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/v1/messages", json=body, headers=headers, timeout=5)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "great"}], **extra}


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        ({"messages": [{"role": "user", "content": " "}]}, "non-empty content"),
        ({"tool_choice": {"type": "tool", "name": "x"}}, "not found in tools"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
         "additionalProperties"),
    ],
)
def test_bodies_the_api_refuses_are_400s_in_its_error_shape(
    fake_anthropic: FakeAnthropic, sent: dict[str, Any], said: str
) -> None:
    response = post(fake_anthropic, {k: v for k, v in body(**sent).items() if v is not None})
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert said in error["error"]["message"]


def test_the_version_header_is_required_and_the_key_checked(fake_anthropic: FakeAnthropic) -> None:
    assert post(fake_anthropic, body(), headers={"x-api-key": "k"}).status_code == 400
    fake_anthropic.script(require_api_key="right")
    refused = post(fake_anthropic, body())
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


def test_a_forced_tool_is_answered_with_a_tool_use_block(fake_anthropic: FakeAnthropic) -> None:
    tool = {"name": "label", "input_schema": {"type": "object", "properties": {
        "label": {"type": "string", "enum": ["negative", "positive"]}}, "required": ["label"]}}
    reply = post(fake_anthropic, body(tools=[tool], tool_choice={"type": "tool", "name": "label"})).json()
    assert reply["stop_reason"] == "tool_use"
    assert reply["content"] == [{"type": "tool_use", "id": "toolu_fake_1", "name": "label",
                                 "input": {"label": "positive"}}]
    assert set(reply["usage"]) == {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                                   "cache_read_input_tokens"}


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error"),
                                              (500, "api_error"), (403, "permission_error")])
def test_scripted_statuses_carry_anthropics_error_types(fake_anthropic: FakeAnthropic, status: int, kind: str) -> None:
    fake_anthropic.script(status=status, retry_after=2)
    response = post(fake_anthropic, body())
    assert response.status_code == status and response.json()["error"]["type"] == kind
    assert response.headers["retry-after"] == "2"


def test_an_rpm_limit_says_so_in_anthropics_headers(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(rpm=60, rpm_window_s=60)
    first, second = post(fake_anthropic, body()), post(fake_anthropic, body())
    assert first.headers["anthropic-ratelimit-requests-limit"] == "60"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "59"
    assert first.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert second.status_code == 200


def test_the_process_variant_keeps_its_own_batches() -> None:
    with FakeAnthropicProcess() as fake:
        fake.batch_script(in_progress_s=60)
        created = httpx.post(f"{fake.base_url}/v1/messages/batches", headers=HEADERS, timeout=5,
                             json={"requests": [{"custom_id": "a", "params": body()}]}).json()
        assert created["processing_status"] == "in_progress"
        assert created["request_counts"]["processing"] == 1
        stats = fake.batch_stats()
        assert stats["batches_created"] == 1 and stats["routes"] == {"create": 1}
