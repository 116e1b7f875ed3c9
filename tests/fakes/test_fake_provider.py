"""The fake provider itself: replies, scripting, counters, the process variant."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fakes.handles import FakeProvider, FakeProviderProcess

LABEL_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


def chat(fake: Any, content: str, fmt: dict[str, Any] | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    if fmt is not None:
        body["response_format"] = fmt
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, timeout=5)


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}


def content_of(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    ("text", "label"),
    [("This was terrible", "negative"), ("I love it", "positive"), ("It arrived", "positive")],
)
def test_enum_choice_follows_the_words_of_the_prompt(fake_provider: FakeProvider, text: str, label: str) -> None:
    reply = json.loads(content_of(chat(fake_provider, text, schema_format(LABEL_SCHEMA))))
    assert reply["label"] == label
    jsonschema.validate(reply, LABEL_SCHEMA)


def test_nested_schema_with_refs_gets_a_valid_instance(fake_provider: FakeProvider) -> None:
    schema = {
        "type": "object",
        "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string", "minLength": 3},
                                                             "age": {"type": "integer", "minimum": 18}},
                             "required": ["name", "age"]}},
        "properties": {
            "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 2},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 2},
            "ok": {"type": "boolean"},
            "note": {"type": ["string", "null"], "maxLength": 4},
            "score": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMaximum": 0}]},
        },
        "required": ["people", "tags", "ok", "note", "score"],
    }
    reply = json.loads(content_of(chat(fake_provider, "x", schema_format(schema))))
    jsonschema.validate(reply, schema)
    assert len(reply["people"]) == 2


def test_json_object_and_text_replies(fake_provider: FakeProvider) -> None:
    obj = json.loads(content_of(chat(fake_provider, 'Return "name" and "email"', {"type": "json_object"})))
    assert set(obj) == {"name", "email"}
    assert content_of(chat(fake_provider, "hello")).startswith("Fake reply")


def test_json_object_follows_a_schema_spelled_out_in_a_message(fake_provider: FakeProvider) -> None:
    note = "Reply with one JSON object that follows this JSON Schema:\n" + json.dumps(LABEL_SCHEMA)
    body = {"model": "m", "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": note}, {"role": "user", "content": "awful 'item'"}]}
    response = httpx.post(f"{fake_provider.base_url}/chat/completions", json=body, timeout=5)
    reply = json.loads(content_of(response))
    jsonschema.validate(reply, LABEL_SCHEMA)
    assert reply["label"] == "negative"


def test_usage_is_about_a_quarter_of_the_characters(fake_provider: FakeProvider) -> None:
    usage = chat(fake_provider, "x" * 400).json()["usage"]
    assert usage["prompt_tokens"] == 100
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_scripted_status_for_the_next_requests_then_normal(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=429, retry_after=2, retry_after_ms=150, times=2)
    first, second, third = (chat(fake_provider, "x") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "2" and first.headers["retry-after-ms"] == "150"
    assert fake_provider.stats()["by_status"] == {"429": 2, "200": 1}
    assert fake_provider.count == 3 and len(fake_provider.requests) == 3


def test_match_and_rate_rules(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=503, match="poison")
    assert chat(fake_provider, "a poison item").status_code == 503
    assert chat(fake_provider, "a fine item").status_code == 200
    fake_provider.reset()
    fake_provider.script(status=500, rate=0.5, seed=7)
    codes = [chat(fake_provider, "x").status_code for _ in range(40)]
    assert 5 < codes.count(500) < 35


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("wrong_label", lambda r: json.loads(content_of(r))["label"] == "not_a_valid_label"),
        ("truncated", lambda r: r.json()["choices"][0]["finish_reason"] == "length"),
        ("non_json", lambda r: not content_of(r).startswith("{")),
        ("missing_choices", lambda r: "choices" not in r.json()),
        ("malformed", lambda r: r.status_code == 200 and r.text.startswith('{"id"')),
        ("reject_json_schema", lambda r: r.status_code == 400 and "json_schema" in r.text),
        ("refusal", lambda r: r.json()["choices"][0]["message"] == {
            "role": "assistant", "content": None, "refusal": "I can't help with that."}
         and r.json()["choices"][0]["finish_reason"] == "stop"),
        ("content_filter", lambda r: r.json()["choices"][0]["message"]["content"] is None
         and r.json()["choices"][0]["finish_reason"] == "content_filter"),
    ],
)
def test_reply_faults(fake_provider: FakeProvider, fault: str, check: Any) -> None:
    fake_provider.script(fault=fault, times=1)
    assert check(chat(fake_provider, "great", schema_format(LABEL_SCHEMA)))


def test_reject_json_schema_lets_json_object_through(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    assert chat(fake_provider, "x", {"type": "json_object"}).status_code == 200
    assert chat(fake_provider, "x", schema_format(LABEL_SCHEMA)).status_code == 400


def test_reject_logprobs_hits_only_requests_with_logprobs(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_logprobs")
    refused = chat(fake_provider, "x", schema_format(LABEL_SCHEMA), logprobs=True, top_logprobs=3)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"
    assert "not supported" in refused.json()["error"]["message"]
    assert chat(fake_provider, "x", schema_format(LABEL_SCHEMA)).status_code == 200


def test_a_rule_for_one_model(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=503, model="m")
    assert chat(fake_provider, "x").status_code == 503
    assert chat(fake_provider, "x", model="other").status_code == 200


def test_logprobs_score_the_chosen_label(fake_provider: FakeProvider) -> None:
    fake_provider.script(logprobs=True)
    reply = chat(fake_provider, "awful", schema_format(LABEL_SCHEMA), logprobs=True, top_logprobs=3).json()
    tokens = reply["choices"][0]["logprobs"]["content"]
    label = next(t for t in tokens if t["token"] == "negative")
    assert {t["token"] for t in label["top_logprobs"]} == {"negative", "positive", "neutral"}
    assert tokens[0]["top_logprobs"]


def test_reset_fault_closes_the_connection(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reset", times=1)
    with pytest.raises(httpx.TransportError):
        chat(fake_provider, "x")
    assert fake_provider.stats()["by_status"] == {"reset": 1}


def test_hang_until_reset(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_provider.base_url}/chat/completions", json={"messages": []}, timeout=0.3)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_try_chat(fake_provider)))
    thread.start()
    time.sleep(0.2)
    fake_provider.reset()
    thread.join(5)
    assert outcome and isinstance(outcome[0], httpx.TransportError)


def _try_chat(fake: FakeProvider) -> Any:
    try:
        return chat(fake, "x")
    except httpx.TransportError as exc:
        return exc


def test_latency_and_max_in_flight(fake_provider: FakeProvider) -> None:
    fake_provider.script(latency_ms=150)
    threads = [threading.Thread(target=chat, args=(fake_provider, "x")) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.monotonic() - started >= 0.14
    assert fake_provider.stats()["max_in_flight"] == 4


def test_server_side_rpm_limit(fake_provider: FakeProvider) -> None:
    fake_provider.script(rpm=120, rpm_window_s=1)  # 2 per second
    codes = [chat(fake_provider, "x") for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["retry-after"] == "1"


def test_unknown_script_key_is_an_error(fake_provider: FakeProvider) -> None:
    with pytest.raises(ValueError, match="unknown script keys"):
        fake_provider.script(latency=5)


def test_process_variant_is_scriptable_over_http(fake_provider_process: FakeProviderProcess) -> None:
    fake = fake_provider_process
    assert fake.base_url.endswith("/v1")
    fake.script(status=502, times=1)
    assert chat(fake, "x").status_code == 502
    assert chat(fake, "x").status_code == 200
    assert fake.stats()["requests"] == 2 and len(fake.requests) == 2
    assert httpx.get(f"{fake.base_url}/models").json()["data"][0]["id"] == "fake-model"
    fake.reset()
    assert fake.count == 0
