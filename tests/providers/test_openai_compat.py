"""The OpenAI-compatible provider against the fake: replies, faults, retries, fallback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import jsonschema
import pytest

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from agentflow_jobs.providers.openai_reply import CONTENT_FILTERED, parse_reply
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import API_KEY, LABEL_FORMAT, make_provider, request


def chat(base_url: str, *requests: Any, **options: Any) -> list[ChatReply]:
    async def run() -> list[ChatReply]:
        provider = make_provider(base_url, **options)
        try:
            return [await provider.chat(r) for r in requests or (request(),)]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def failure(base_url: str, *requests: Any, **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        chat(base_url, *requests, **options)
    assert API_KEY not in str(caught.value)
    return caught.value


def test_structured_reply_with_usage_and_finish_reason(fake_provider: FakeProvider) -> None:
    [reply] = chat(fake_provider.base_url, request("This is terrible", response_format=LABEL_FORMAT))
    assert json.loads(reply.text) == {"label": "negative", "confidence": 0.9}
    assert reply.finish_reason == "stop" and reply.model == "fake-model"
    assert reply.usage.prompt_tokens == 4 and reply.usage.total_tokens > 4
    [sent] = fake_provider.requests
    assert sent["response_format"] == LABEL_FORMAT and sent["model"] == "fake-model"
    assert fake_provider.request_headers[0]["authorization"] == f"Bearer {API_KEY}"
    assert fake_provider.request_headers[0]["user-agent"] == "agentflow-jobs"


def test_logprobs_and_truncation_are_passed_back(fake_provider: FakeProvider) -> None:
    fake_provider.script(logprobs=True, match="score me")
    fake_provider.script(fault="truncated", match="cut me")
    scored, cut = chat(
        fake_provider.base_url,
        request("great, score me", response_format=LABEL_FORMAT, logprobs=True, top_logprobs=2),
        request("great, cut me", response_format=LABEL_FORMAT),
    )
    assert scored.logprobs is not None
    label = next(t for t in scored.logprobs if t.token == "positive")
    assert set(label.top) == {"positive", "negative"} and label.logprob == pytest.approx(-0.105, abs=0.01)
    assert fake_provider.requests[0]["logprobs"] is True and fake_provider.requests[0]["top_logprobs"] == 2
    assert cut.finish_reason == "length" and cut.logprobs is None


@pytest.mark.parametrize("status", [429, 500, 502, 503, 408, 409])
def test_transient_statuses_are_retried_until_success(fake_provider: FakeProvider, status: int) -> None:
    fake_provider.script(status=status, times=2)
    [reply] = chat(fake_provider.base_url)
    assert reply.text.startswith("Fake reply")
    assert fake_provider.count == 3


@pytest.mark.parametrize(
    ("status", "code"), [(429, "rate_limited"), (500, "provider_error"), (503, "provider_error")]
)
def test_gives_up_after_max_attempts(fake_provider: FakeProvider, status: int, code: str) -> None:
    fake_provider.script(status=status)
    error = failure(fake_provider.base_url, max_attempts=4)
    assert (error.code, error.status_code) == (code, status)
    assert f"HTTP {status}" in str(error) and "gave up after 4 attempts" in str(error)
    assert fake_provider.count == 4


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (404, "bad_request"), (401, "auth")])
def test_client_errors_are_not_retried(fake_provider: FakeProvider, status: int, code: str) -> None:
    fake_provider.script(status=status, body=f"rejected key {API_KEY} for this model")
    error = failure(fake_provider.base_url)
    assert error.code == code and "rejected key ***" in str(error)
    assert fake_provider.count == 1


@pytest.mark.parametrize("fault", ["malformed", "missing_choices"])
def test_unusable_bodies_are_retried_as_provider_errors(fake_provider: FakeProvider, fault: str) -> None:
    fake_provider.script(fault=fault)
    error = failure(fake_provider.base_url)
    assert error.code == "provider_error" and "unusable reply" in str(error)
    assert fake_provider.count == 3


def test_one_malformed_body_then_success(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="malformed", times=1)
    chat(fake_provider.base_url)
    assert fake_provider.count == 2


def test_connection_reset_is_retried(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reset")
    error = failure(fake_provider.base_url, max_attempts=2)
    assert error.code == "provider_error"
    assert fake_provider.stats()["by_status"] == {"reset": 2}


def test_hung_provider_times_out(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="hang")
    error = failure(fake_provider.base_url, max_attempts=2, timeout=0.3)
    assert error.code == "timeout" and "timed out" in str(error)
    assert "the attempt had 0.3 s, provider.timeout" in str(error)  # what to change
    assert fake_provider.count == 2 and fake_provider.stats()["by_status"] == {"hang": 2}


def test_slow_provider_hits_the_read_timeout(fake_provider: FakeProvider) -> None:
    fake_provider.script(latency_ms=1000)
    error = failure(fake_provider.base_url, max_attempts=1, read_timeout=0.2)
    assert error.code == "timeout"
    # the limit that fired, not the whole attempt's (60 s, provider.timeout)
    assert "no data for 0.2 s, provider.read_timeout" in str(error) and "provider.timeout" not in str(error)


def test_httpxs_own_transport_reports_its_timeouts_as_timeouts(fake_provider: FakeProvider) -> None:
    # httpx raises ReadTimeout from httpcore's ReadTimeout (the native batch APIs' client
    # too); the whole attempt's timer raises a TimeoutError, not a CancelledError
    fake_provider.script(fault="hang")
    read = failure(fake_provider.base_url, max_attempts=1, transport="httpx", read_timeout=0.2)
    assert read.code == "timeout" and "(ReadTimeout; no data for 0.2 s, provider.read_timeout)" in str(read)
    whole = failure(fake_provider.base_url, max_attempts=1, transport="httpx", timeout=0.3)
    assert whole.code == "timeout" and "(TimeoutError; the attempt had 0.3 s, provider.timeout)" in str(whole)


def test_a_redirect_is_an_error_that_says_where_to_not_a_malformed_reply(fake_provider: FakeProvider) -> None:
    # http:// written for https://: the server moves the POST; followed, it would lose
    # its body or its key, so it is not followed, and not retried
    fake_provider.script(status=301, body="<html>301 Moved Permanently</html>",
                         headers={"location": "https://api.example.com/v1/chat/completions"})
    error = failure(fake_provider.base_url, max_attempts=3)
    assert (error.code, error.status_code, error.retryable) == ("bad_request", 301, False)
    assert "answered HTTP 301" in str(error) and "malformed" not in str(error)
    assert "a redirect to https://api.example.com/v1/chat/completions: set provider.base_url" in str(error)
    assert fake_provider.count == 1


_SCHEMA_KEY_REFUSED = json.dumps({"error": {"message": "Unexpected field 'schema' in response_format"}})
_OWN_FORMAT = {"type": "json_object", "schema": {"type": "object", "properties": {"label": {"type": "string"}}}}


def test_a_callers_json_object_schema_refused_is_resent_once_without_it(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=400, body=_SCHEMA_KEY_REFUSED, times=1)
    [reply] = chat(fake_provider.base_url, request("great", response_format=_OWN_FORMAT))
    assert json.loads(reply.text)
    assert [r["response_format"] for r in fake_provider.requests] == [_OWN_FORMAT, {"type": "json_object"}]


def test_a_refusal_that_resending_cannot_avoid_ends_the_request_not_an_endless_resend(
    fake_provider: FakeProvider,
) -> None:
    # the server says the same of every body: once nothing is left to leave out, the
    # request fails with the server's words instead of being sent again without a pause
    fake_provider.script(status=400, body=_SCHEMA_KEY_REFUSED)
    error = failure(fake_provider.base_url, request("great", response_format=_OWN_FORMAT), max_attempts=3)
    assert (error.code, error.status_code) == ("bad_request", 400) and "Unexpected field" in str(error)
    assert fake_provider.count <= 3


def test_a_refusal_the_body_still_carries_after_it_is_known_is_not_resent(fake_provider: FakeProvider) -> None:
    # the resend loop's own bound, whatever the body builder does: a provider whose bodies
    # keep logprobs after the server refused them is refused once more, then gives up
    class Stubborn(OpenAICompatProvider):
        def payload(self, chat: ChatRequest) -> dict[str, Any]:
            return {**super().payload(chat), "logprobs": True}

    fake_provider.script(fault="reject_logprobs")
    provider = Stubborn(fake_provider.base_url, api_key=API_KEY, model="fake-model",
                        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05))

    async def run() -> None:
        try:
            await asyncio.wait_for(provider.chat(request("great")), 10)
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(run())
    assert (caught.value.code, caught.value.status_code) == ("bad_request", 400)
    assert fake_provider.count == 2  # the first refusal is learned and resent; the second ends it


def test_a_server_that_never_accepts_hits_the_connect_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # fill the backlog: the kernel leaves further connection attempts unanswered
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            error = failure(f"http://127.0.0.1:{port}/v1", max_attempts=1, connect_timeout=0.3)
        finally:
            for filler in fillers:
                filler.close()
    assert error.code == "timeout"
    assert "no connection in 0.3 s, provider.connect_timeout" in str(error)


def test_unreachable_provider(fake_provider: FakeProvider) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = failure(f"http://127.0.0.1:{port}/v1", max_attempts=2)
    assert error.code == "provider_error" and "connection failed" in str(error)


@pytest.mark.parametrize(("header", "value"), [("retry_after", 0.4), ("retry_after_ms", 400)])
def test_retry_after_is_honoured(fake_provider: FakeProvider, header: str, value: float) -> None:
    fake_provider.script(status=429, times=1, **{header: value})
    started = time.monotonic()
    chat(fake_provider.base_url)
    assert time.monotonic() - started >= 0.35
    assert fake_provider.count == 2


def test_after_the_fallback_a_label_reply_still_follows_the_schema(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    replies = chat(
        fake_provider.base_url,
        request("This is awful", response_format=LABEL_FORMAT),
        request("I love it", response_format=LABEL_FORMAT),
    )
    assert [r["response_format"]["type"] for r in fake_provider.requests] == ["json_schema", "json_object",
                                                                              "json_object"]
    schema = LABEL_FORMAT["json_schema"]["schema"]
    for reply in replies:
        jsonschema.validate(json.loads(reply.text), schema)
    assert [json.loads(r.text)["label"] for r in replies] == ["negative", "positive"]


def test_json_schema_rejected_falls_back_to_json_object_and_remembers(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    first, second = chat(
        fake_provider.base_url,
        request("great", response_format=LABEL_FORMAT),
        request("awful", response_format=LABEL_FORMAT),
    )
    formats = [r["response_format"]["type"] for r in fake_provider.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert json.loads(first.text) and json.loads(second.text)
    note = fake_provider.requests[1]["messages"][0]
    assert note["role"] == "system" and '"enum": ["positive", "negative"]' in note["content"]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."),
        (400, "Invalid value: 'json_schema'. Supported values are: 'json_object' and 'text'."),
        (400, "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later"),
        (400, "1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be 'text' or"
              " 'json_object' [type=literal_error, input_value='json_schema', input_type=str]"),
        (422, json.dumps({"detail": [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                                      "msg": "Input should be 'text' or 'json_object'", "input": "json_schema"}]})),
        (422, json.dumps({"detail": [{"type": "extra_forbidden", "loc": ["body", "response_format", "json_schema"],
                                      "msg": "Extra inputs are not permitted"}]})),
        (400, "Failed to deserialize the JSON body into the target type: response_format: unknown variant"
              " `json_schema`, expected `text` or `json_object` at line 1 column 412"),
        (400, "litellm.UnsupportedParamsError: together_ai does not support parameters: ['response_format'],"
              " for model=fake-model. To drop these, set `litellm.drop_params=True`"),
        (400, "This response_format type is unavailable now"),
        (400, "response_format.type must be one of: text, json_object"),
    ],
)
def test_servers_wordings_of_json_schema_unsupported_trigger_the_fallback(
    fake_provider: FakeProvider, status: int, message: str
) -> None:
    fake_provider.script(status=status, body=message, times=1)
    [reply] = chat(fake_provider.base_url, request("awful", response_format=LABEL_FORMAT))
    assert [r["response_format"]["type"] for r in fake_provider.requests] == ["json_schema", "json_object"]
    assert json.loads(reply.text)


@pytest.mark.parametrize(
    "message",
    [
        "max_tokens is too large",
        "Invalid schema for response_format 'x': In context=(), 'additionalProperties' is required to be"
        " supplied and to be false.",
        "Invalid schema for response_format 'label': In context=('properties', 'label'), 'minLength' is not"
        " permitted.",
        "'response_format.json_schema.schema' must be an object",
        "The provided JSON schema contains features not supported by xgrammar.",
        "Unsupported parameter: 'logprobs' is not supported with this model.",
    ],
)
def test_other_bad_requests_do_not_trigger_the_fallback(fake_provider: FakeProvider, message: str) -> None:
    fake_provider.script(status=400, body=message)
    error = failure(fake_provider.base_url, request("x", response_format=LABEL_FORMAT))
    assert error.code == "bad_request" and message[:60] in str(error)
    assert [r["response_format"]["type"] for r in fake_provider.requests] == ["json_schema"]


def test_an_invalid_schema_fails_only_its_own_request(fake_provider: FakeProvider) -> None:
    message = ("Invalid schema for response_format 'x': In context=(), 'additionalProperties' is required"
               " to be supplied and to be false.")
    fake_provider.script(status=400, body=message, times=1)

    async def run() -> tuple[ProviderError, ChatReply]:
        provider = make_provider(fake_provider.base_url)
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.chat(request("great", response_format=LABEL_FORMAT))
            return caught.value, await provider.chat(request("great", response_format=LABEL_FORMAT))
        finally:
            await provider.aclose()

    error, later = asyncio.run(run())
    assert error.code == "bad_request" and error.status_code == 400 and message in str(error)
    assert [r["response_format"]["type"] for r in fake_provider.requests] == ["json_schema", "json_schema"]
    assert json.loads(later.text) == {"label": "positive", "confidence": 0.9}


def test_json_schema_fallback_is_remembered_per_model(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema", model="old-model")
    chat(
        fake_provider.base_url,
        request("great", model="old-model", response_format=LABEL_FORMAT),
        request("great", model="new-model", response_format=LABEL_FORMAT),
        request("great", model="old-model", response_format=LABEL_FORMAT),
    )
    sent = [(r["model"], r["response_format"]["type"]) for r in fake_provider.requests]
    assert sent == [("old-model", "json_schema"), ("old-model", "json_object"),
                    ("new-model", "json_schema"), ("old-model", "json_object")]


def test_the_fallback_resend_is_not_a_retry_attempt(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    [reply] = chat(fake_provider.base_url, request("great", response_format=LABEL_FORMAT), max_attempts=1)
    assert json.loads(reply.text) and fake_provider.count == 2


def label_request(text: str, **fields: Any) -> Any:
    """A request as the label operation sends it: a schema and log-probabilities."""
    return request(text, response_format=LABEL_FORMAT, logprobs=True, top_logprobs=5, **fields)


def test_refused_logprobs_are_dropped_and_remembered_per_model(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_logprobs", model="reasoning-model")
    first, _, _ = chat(
        fake_provider.base_url,
        label_request("awful", model="reasoning-model"),
        label_request("awful", model="reasoning-model"),
        label_request("awful", model="fake-model"),
    )
    assert json.loads(first.text)["label"] == "negative"
    sent = [(r["model"], r.get("logprobs"), r.get("top_logprobs")) for r in fake_provider.requests]
    assert sent == [("reasoning-model", True, 5), ("reasoning-model", None, None),
                    ("reasoning-model", None, None), ("fake-model", True, 5)]
    assert fake_provider.stats()["by_status"] == {"400": 1, "200": 3}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "`logprobs` is not supported with this model"),
        (400, "Invalid JSON payload received. Unknown name \"logprobs\": Cannot find field."),
        (400, "Logprobs is not enabled for models/gemini-2.5-pro"),
        (400, "Gaudi doesn't support logprobs. Please remove 'logprobs'/'top_logprobs' from your request."),
        (400, "Requested sample logprobs of 5, which is greater than max allowed: 0"),
        (422, json.dumps({"detail": [{"type": "extra_forbidden", "loc": ["body", "top_logprobs"],
                                      "msg": "Extra inputs are not permitted", "input": 5}]})),
    ],
)
def test_servers_wordings_of_logprobs_unsupported_drop_them(
    fake_provider: FakeProvider, status: int, message: str
) -> None:
    fake_provider.script(status=status, body=message, times=1)
    [reply] = chat(fake_provider.base_url, label_request("great"))
    assert json.loads(reply.text)["label"] == "positive"
    assert ["logprobs" in r for r in fake_provider.requests] == [True, False]


def test_a_refused_feature_is_resent_without_it_once(fake_provider: FakeProvider) -> None:
    message = "Unsupported parameter: 'logprobs' is not supported with this model."
    fake_provider.script(status=400, body=message)  # whatever is sent
    error = failure(fake_provider.base_url, label_request("great"), max_attempts=5)
    assert error.code == "bad_request" and message in str(error)
    assert ["logprobs" in r for r in fake_provider.requests] == [True, False]


def test_both_fallbacks_in_turn_are_not_retry_attempts(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    fake_provider.script(fault="reject_logprobs")
    [reply] = chat(fake_provider.base_url, label_request("great"), max_attempts=1)
    assert json.loads(reply.text)
    sent = [(r["response_format"]["type"], r.get("logprobs")) for r in fake_provider.requests]
    assert sent == [("json_schema", True), ("json_object", True), ("json_object", None)]


def test_plain_httpx_transport_also_works(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=503, times=1)
    [reply] = chat(fake_provider.base_url, transport="httpx")
    assert reply.text and fake_provider.count == 2


def test_provider_survives_a_new_event_loop(fake_provider: FakeProvider) -> None:
    provider = make_provider(fake_provider.base_url)
    asyncio.run(provider.chat(request()))
    asyncio.run(provider.chat(request()))  # a sync wrapper may run one loop per call
    asyncio.run(provider.aclose())
    assert fake_provider.count == 2
    assert API_KEY not in repr(provider)


@pytest.mark.parametrize("fault", ["non_json", "wrong_label", "empty"])
def test_bad_content_is_the_operations_business_not_retried_here(
    fake_provider: FakeProvider, fault: str
) -> None:
    fake_provider.script(fault=fault, times=1)
    [reply] = chat(fake_provider.base_url, request("great", response_format=LABEL_FORMAT))
    assert reply.finish_reason == "stop" and fake_provider.count == 1
    assert "positive" not in reply.text


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 12, "completion_tokens": 3}, (12, 3, 15)),
        ({"prompt_tokens": "lots", "completion_tokens": -3, "total_tokens": None}, (0, 0, 0)),
        ({"prompt_tokens": 7.0, "completion_tokens": True, "total_tokens": float("nan")}, (7, 0, 7)),
        ("not an object", (0, 0, 0)),
    ],
)
def test_odd_usage_counts_do_not_fail_an_answered_item(usage: Any, expected: tuple[int, int, int]) -> None:
    body = {"choices": [{"message": {"content": '{"label": "positive"}'}, "finish_reason": "stop"}],
            "usage": usage}
    reply = parse_reply(json.dumps(body).encode())
    assert reply.text == '{"label": "positive"}'
    got = reply.usage
    assert (got.prompt_tokens, got.completion_tokens, got.total_tokens, got.requests) == (*expected, 1)


@pytest.mark.parametrize(
    ("fault", "refusal", "finish_reason"),
    [("refusal", "I can't help with that.", "stop"), ("content_filter", CONTENT_FILTERED, "content_filter")],
)
def test_a_declined_reply_says_why(
    fake_provider: FakeProvider, fault: str, refusal: str, finish_reason: str
) -> None:
    fake_provider.script(fault=fault, times=1)
    declined, answered = chat(
        fake_provider.base_url,
        request("great", response_format=LABEL_FORMAT),
        request("great", response_format=LABEL_FORMAT),
    )
    assert (declined.text, declined.refusal, declined.finish_reason) == ("", refusal, finish_reason)
    assert answered.refusal is None and json.loads(answered.text)["label"] == "positive"
    assert fake_provider.count == 2  # a refusal is an answer, not a failure to retry


@pytest.mark.parametrize(
    ("message", "finish_reason", "text", "refusal"),
    [
        ({"content": None, "refusal": "No."}, "content_filter", "", "No."),
        ({"content": "partial", "refusal": None}, "content_filter", "partial", CONTENT_FILTERED),
        ({"content": "", "refusal": ""}, "stop", "", None),
        ({"content": "{}", "refusal": 42}, "stop", "{}", None),
        ("not an object", "stop", "", None),
    ],
)
def test_refusal_text_wins_over_the_content_filter_note(
    message: Any, finish_reason: str, text: str, refusal: str | None
) -> None:
    body = {"choices": [{"message": message, "finish_reason": finish_reason}]}
    reply = parse_reply(json.dumps(body).encode())
    assert (reply.text, reply.refusal) == (text, refusal)


@pytest.mark.parametrize(
    ("content", "text"),
    [
        # gateways and reasoning models send content as parts: the text parts are the answer
        ([{"type": "text", "text": '{"label":'}, {"type": "text", "text": ' "positive"}'}], '{"label": "positive"}'),
        ([{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
          {"type": "text", "text": '{"label": "negative"}'}], '{"label": "negative"}'),
        ({"label": "positive"}, '{"label": "positive"}'),  # not text: as JSON, for the operation
        ([1, 2], "[1, 2]"),
    ],
)
def test_content_in_parts_is_read_as_its_text(content: Any, text: str) -> None:
    body = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
    assert parse_reply(json.dumps(body).encode()).text == text


def test_unreadable_logprobs_are_left_out_not_a_failed_item() -> None:
    logprobs = {"content": [
        {"token": "pos", "logprob": -0.1, "top_logprobs": [
            {"token": "pos", "logprob": -0.1}, {"token": "neg", "logprob": None}, {"token": "x", "logprob": "bad"}]},
        {"token": "itive", "logprob": None, "top_logprobs": []},
        {"token": "!", "logprob": -2, "top_logprobs": None},
        {"token": "?", "logprob": True},
    ]}
    body = {"choices": [{"message": {"content": "positive"}, "finish_reason": "stop", "logprobs": logprobs}]}
    reply = parse_reply(json.dumps(body).encode())
    assert reply.text == "positive" and reply.logprobs is not None
    assert [(t.token, t.logprob, t.top) for t in reply.logprobs] == [
        ("pos", -0.1, {"pos": -0.1}), ("!", -2.0, {})]


def test_a_reply_nested_past_the_parsers_depth_is_a_malformed_reply_not_a_crash() -> None:
    with pytest.raises(ProviderError, match="malformed JSON") as caught:
        parse_reply(b"[" * 100_000)
    assert caught.value.retryable and caught.value.code == "provider_error"


def test_a_server_without_response_format_gets_none_and_the_schema_in_words(
    fake_provider: FakeProvider,
) -> None:
    # LiteLLM in front of a model without JSON mode refuses the parameter whatever its type
    refusal = "litellm.UnsupportedParamsError: openai does not support parameters: ['response_format']"
    fake_provider.script(status=400, body=refusal, times=2)
    first, second = chat(
        fake_provider.base_url,
        request("great", response_format=LABEL_FORMAT),
        request("awful", response_format=LABEL_FORMAT),
        max_attempts=1,
    )
    formats = [(r.get("response_format") or {}).get("type") for r in fake_provider.requests]
    assert formats == ["json_schema", "json_object", None, None]  # each refusal learnt once
    last = fake_provider.requests[-1]
    assert "follows this JSON Schema" in last["messages"][0]["content"]
    assert json.loads(first.text)["label"] in ("positive", "negative", "neutral")
    assert json.loads(second.text)["label"] == "negative"


def test_the_body_sent_is_json_dumps_of_the_payload_byte_for_byte() -> None:
    # the encoder caches the system prompt and the tail, and writes role/content messages
    # with the string encoder: what goes on the wire must not change with any of that
    from agentflow_jobs.providers.openai_request import RequestBodies

    bodies = RequestBodies()
    for text in ("Review 1: it was great.", 'é "quoted" \n\t\u2028 😀 \\ </script>'):
        chat = request(text, response_format=LABEL_FORMAT, max_tokens=40)
        payload = bodies.payload(chat, "fake-model")
        payload["messages"].append({"content": "key order kept", "role": "user"})
        assert bodies.encode(payload) == json.dumps(payload).encode()
