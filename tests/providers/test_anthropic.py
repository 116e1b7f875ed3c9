"""The Anthropic provider against the Anthropic fake over HTTP: the body it sends, the
replies it reads, and what each error answer becomes (the table in ``providers.anthropic``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.anthropic import AnthropicProvider
from agentflow_jobs.providers.anthropic_reply import REFUSED, parse_message
from agentflow_jobs.providers.anthropic_request import DEFAULT_MAX_TOKENS, message_body
from tests.fakes.anthropic import FakeAnthropic
from tests.providers.conftest import API_KEY, LABEL_FORMAT, chat_once, request


def make(fake: FakeAnthropic, *, max_attempts: int = 3, **options: Any) -> AnthropicProvider:
    options.setdefault("retry", RetryPolicy(max_attempts=max_attempts, base_delay=0.01, max_delay=0.05))
    return AnthropicProvider(fake.base_url, api_key=API_KEY, model="claude-haiku-4-5", **options)


def chat(fake: FakeAnthropic, *requests: ChatRequest, **options: Any) -> list[ChatReply]:
    async def run() -> list[ChatReply]:
        provider = make(fake, **options)
        try:
            return [await provider.chat(r) for r in requests or (request(),)]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def failure(fake: FakeAnthropic, *requests: ChatRequest, **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        chat(fake, *requests, **options)
    assert API_KEY not in str(caught.value) and API_KEY not in json.dumps(caught.value.to_dict())
    return caught.value


# -- what is sent ------------------------------------------------------------------------


def test_a_structured_request_is_a_forced_tool_call_and_its_input_the_reply(fake_anthropic: FakeAnthropic) -> None:
    chat_request = ChatRequest(
        messages=[{"role": "system", "content": "Classify."}, {"role": "user", "content": "This is terrible"}],
        response_format=LABEL_FORMAT, max_tokens=60, logprobs=True, top_logprobs=5)
    [reply] = chat(fake_anthropic, chat_request)
    assert json.loads(reply.text) == {"label": "negative", "confidence": 0.9}
    assert reply.finish_reason == "stop" and reply.logprobs is None and reply.refusal is None
    [sent] = fake_anthropic.requests
    assert sent["system"] == "Classify." and sent["messages"] == [{"role": "user", "content": "This is terrible"}]
    assert sent["tools"][0]["input_schema"] == LABEL_FORMAT["json_schema"]["schema"]
    assert sent["tool_choice"] == {"type": "tool", "name": "label"}
    assert sent["max_tokens"] == 60 and sent["model"] == "claude-haiku-4-5"
    assert "logprobs" not in sent and "top_logprobs" not in sent and "response_format" not in sent
    headers = fake_anthropic.request_headers[0]
    assert headers["x-api-key"] == API_KEY and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


def test_max_tokens_is_always_sent_the_operations_or_the_profiles(fake_anthropic: FakeAnthropic) -> None:
    chat(fake_anthropic, request("a"))
    chat(fake_anthropic, request("b"), max_tokens=777)
    assert [b["max_tokens"] for b in fake_anthropic.requests] == [DEFAULT_MAX_TOKENS, 777]


def test_a_re_ask_after_an_empty_reply_is_a_conversation_the_api_takes(fake_anthropic: FakeAnthropic) -> None:
    messages = [{"role": "system", "content": "S1"}, {"role": "system", "content": "S2"},
                {"role": "user", "content": "great"}, {"role": "assistant", "content": ""},
                {"role": "user", "content": "Your reply was invalid: it is empty."}]
    [reply] = chat(fake_anthropic, ChatRequest(messages=messages, response_format=LABEL_FORMAT))
    assert json.loads(reply.text)["label"] == "positive"
    [sent] = fake_anthropic.requests
    assert sent["system"] == "S1\n\nS2"
    assert sent["messages"] == [{"role": "user", "content": "great\n\nYour reply was invalid: it is empty."}]


def test_a_base_url_given_with_v1_reaches_the_same_endpoint(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider(fake_anthropic.base_url + "/v1/", api_key=API_KEY, model="claude-x")

    async def run() -> ChatReply:
        try:
            return await provider.chat(request())
        finally:
            await provider.aclose()

    assert asyncio.run(run()).text.startswith("Fake reply")


def test_without_a_model_nothing_is_sent() -> None:
    with pytest.raises(ProviderError, match="no model") as caught:
        message_body(request(), None, 100)
    assert caught.value.code == "bad_request" and not caught.value.retryable


def test_tool_names_follow_anthropics_rule_and_temperature_its_range() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "my output: v2!", "schema": {"type": "object"}}}
    body = message_body(ChatRequest(messages=[{"role": "user", "content": "x"}], response_format=fmt,
                                    temperature=1.7), "m", 10)
    assert body["tool_choice"]["name"] == "my_output_v2" and body["temperature"] == 1.0
    plain = message_body(ChatRequest(messages=[{"role": "user", "content": "x"}],
                                     response_format={"type": "json_object"}), "m", 10)
    assert "tools" not in plain and "tool_choice" not in plain


# -- what comes back -----------------------------------------------------------------------


def test_a_refusal_stop_is_a_refusal_with_the_models_words(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(fault="refusal")
    [reply] = chat(fake_anthropic, request("x", response_format=LABEL_FORMAT))
    assert reply.refusal == "I can't help with that." and fake_anthropic.count == 1
    bare = parse_message(json.dumps({"content": [], "stop_reason": "refusal"}).encode(), None)
    assert bare.refusal == REFUSED


def test_a_max_tokens_stop_is_a_truncated_reply(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(fault="truncated")
    text, tool = chat(fake_anthropic, request("great"), request("great", response_format=LABEL_FORMAT))
    assert text.finish_reason == tool.finish_reason == "length"
    assert text.text and tool.text == ""  # a cut tool input is not trusted


def test_usage_counts_every_input_token_the_cache_included() -> None:
    body = {"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "model": "claude-x",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 1000}}
    reply = parse_message(json.dumps(body).encode(), None)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (1110, 5, 1115)
    odd = parse_message(json.dumps({**body, "usage": {"input_tokens": -3, "output_tokens": "x"}}).encode(), None)
    assert (odd.usage.prompt_tokens, odd.usage.completion_tokens) == (0, 0)


@pytest.mark.parametrize("fault", ["malformed", "missing_choices"])
def test_a_body_that_is_no_message_is_retried_as_a_provider_error(fake_anthropic: FakeAnthropic, fault: str) -> None:
    fake_anthropic.script(fault=fault)
    error = failure(fake_anthropic)
    assert error.code == "provider_error" and "unusable reply" in str(error)
    assert fake_anthropic.count == 3


# -- errors: the mapping table --------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 529, 500, 503])
def test_transient_statuses_are_retried_until_success(fake_anthropic: FakeAnthropic, status: int) -> None:
    fake_anthropic.script(status=status, times=2)
    [reply] = chat(fake_anthropic)
    assert reply.text.startswith("Fake reply") and reply.usage.requests == 3
    assert fake_anthropic.count == 3


@pytest.mark.parametrize(
    ("status", "code", "said"),
    [(429, "rate_limited", "Rate limited"), (529, "provider_error", "Overloaded"), (500, "provider_error", "Internal")],
)
def test_gives_up_after_max_attempts(fake_anthropic: FakeAnthropic, status: int, code: str, said: str) -> None:
    fake_anthropic.script(status=status, body=said)
    error = failure(fake_anthropic, max_attempts=3)
    assert (error.code, error.status_code) == (code, status)
    assert f"HTTP {status}: {said}" in str(error) and "gave up after 3 attempts" in str(error)
    assert fake_anthropic.count == 3


def test_overloaded_is_not_a_rate_limit_nothing_pauses(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(status=529, times=1)
    provider = make(fake_anthropic, concurrency=8)
    chat_once(provider)
    assert provider.limiter.limit == 8 and not provider.limiter._paused_until


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (404, "bad_request"), (413, "bad_request"),
                                              (401, "auth"), (403, "auth")])
def test_client_errors_are_not_retried_and_never_show_the_key(
    fake_anthropic: FakeAnthropic, status: int, code: str
) -> None:
    fake_anthropic.script(status=status, body=f"rejected key {API_KEY} for this model")
    error = failure(fake_anthropic)
    assert error.code == code and "rejected key ***" in str(error)
    assert fake_anthropic.count == 1


def test_a_wrong_key_is_an_auth_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(require_api_key="sk-ant-the-right-one")
    error = failure(fake_anthropic)
    assert error.code == "auth" and "invalid x-api-key" in str(error)


def test_retry_after_is_honoured(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(status=429, times=1, retry_after=0.4)
    started = time.monotonic()
    chat(fake_anthropic)
    assert time.monotonic() - started >= 0.35 and fake_anthropic.count == 2


def test_the_ratelimit_headers_set_the_pace(fake_anthropic: FakeAnthropic) -> None:
    # the fake allows 20 per 0.5 s and says so in anthropic-ratelimit-requests-* on every reply
    fake_anthropic.script(rpm=2400, rpm_window_s=0.5)
    provider = make(fake_anthropic, concurrency=8, max_attempts=1)

    async def run() -> list[Any]:
        try:
            jobs = [provider.chat(request(f"item {i}")) for i in range(50)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await provider.aclose()

    results = asyncio.run(run())
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake_anthropic.stats()["by_status"] == {"200": 50}
    assert provider.limiter.requests_per_minute == 2400


def test_a_request_the_api_refuses_is_a_bad_request(fake_anthropic: FakeAnthropic) -> None:
    # a body the fake's validation rejects as the API would: here, an empty conversation
    error = failure(fake_anthropic, ChatRequest(messages=[{"role": "system", "content": "only a system prompt"}]))
    assert error.code == "bad_request" and "at least one message" in str(error)


# -- structured_output: native ----------------------------------------------------------


def test_native_structured_output_sends_the_schema_in_its_subset_and_reads_the_text(
    fake_anthropic: FakeAnthropic,
) -> None:
    [reply] = chat(fake_anthropic, request("This is terrible", response_format=LABEL_FORMAT),
                   structured_output="native")
    assert json.loads(reply.text) == {"label": "negative", "confidence": 0.9}
    [sent] = fake_anthropic.requests
    assert "tools" not in sent and "tool_choice" not in sent
    schema = sent["output_config"]["format"]["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["label", "confidence"]
    assert schema["properties"]["confidence"] == {"type": "number"}  # min/max checked on our side


def test_native_structured_output_on_an_older_model_fails_clearly(fake_anthropic: FakeAnthropic) -> None:
    error = failure(fake_anthropic, request("x", response_format=LABEL_FORMAT, model="claude-3-5-haiku-latest"),
                    structured_output="native")
    assert error.code == "bad_request" and "not supported for model" in str(error)
    assert fake_anthropic.count == 1


def test_structured_output_must_be_tool_or_native() -> None:
    from agentflow_jobs.errors import ConfigError
    from agentflow_jobs.providers import build_provider

    with pytest.raises(ConfigError, match=r"'tool'.*'native'") as caught:
        build_provider({"type": "anthropic", "structured_output": "json"})
    assert caught.value.key == "provider.structured_output"
