"""The fake provider itself: replies, scripting, counters, the process variant."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fakes.handles import FakeProvider, FakeProviderProcess
from tests.fakes.provider import FRONTS, FakeCore

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


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until ``condition()`` holds; the deadline only keeps a broken fake from hanging the run."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def _raw_fake() -> Iterator[FakeProvider]:
    fake = FakeProvider(front="raw")
    yield fake
    fake.close()


@pytest.fixture(params=FRONTS)
def any_front(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    """The in-process fake on each front: uvicorn (what the tests use) and raw (the benchmarks')."""
    if request.param == "uvicorn":
        yield request.getfixturevalue("fake_provider")
        return
    fake: FakeProvider = request.getfixturevalue("_raw_fake")
    fake.reset()
    yield fake
    fake.reset()


def test_the_in_process_fake_is_served_by_uvicorn(fake_provider: FakeProvider, _raw_fake: FakeProvider) -> None:
    assert fake_provider.front == "uvicorn"
    assert chat(fake_provider, "x").headers["server"] == "uvicorn"
    assert httpx.get(f"{fake_provider.base_url}/models").headers["server"] == "uvicorn"
    assert "server" not in chat(_raw_fake, "x").headers  # the bare protocol names no server


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


def test_scripted_status_for_the_next_requests_then_normal(any_front: FakeProvider) -> None:
    any_front.script(status=429, retry_after=2, retry_after_ms=150, times=2)
    first, second, third = (chat(any_front, "x") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "2" and first.headers["retry-after-ms"] == "150"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert any_front.stats()["by_status"] == {"429": 2, "200": 1}
    assert any_front.count == 3 and len(any_front.requests) == 3


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
def test_reply_faults(any_front: FakeProvider, fault: str, check: Any) -> None:
    any_front.script(fault=fault, times=1)
    assert check(chat(any_front, "great", schema_format(LABEL_SCHEMA)))


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


def test_reset_fault_closes_the_connection(any_front: FakeProvider) -> None:
    any_front.script(fault="reset", times=1)
    with pytest.raises(httpx.TransportError):
        chat(any_front, "x")
    assert chat(any_front, "x").status_code == 200
    assert any_front.stats()["by_status"] == {"reset": 1, "200": 1}
    assert any_front.stats()["in_flight"] == 0


def test_hang_until_reset(any_front: FakeProvider) -> None:
    any_front.script(fault="hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{any_front.base_url}/chat/completions", json={"messages": []}, timeout=0.3)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_try_chat(any_front)))
    thread.start()
    wait_for(lambda: any_front.stats()["by_status"].get("hang") == 2, "the second request to hang")
    any_front.reset()
    thread.join(10)
    # released by the reset, not by the client's own 5 s timeout
    assert outcome and isinstance(outcome[0], httpx.TransportError)
    assert not isinstance(outcome[0], httpx.TimeoutException)
    assert any_front.count == 0 and chat(any_front, "x").status_code == 200


def _try_chat(fake: FakeProvider) -> Any:
    try:
        return chat(fake, "x")
    except httpx.TransportError as exc:
        return exc


def test_a_client_that_gives_up_leaves_the_in_flight_count(any_front: FakeProvider) -> None:
    any_front.script(latency_ms=60_000, match="slow")
    any_front.script(fault="hang", match="stuck")
    for text in ("slow", "stuck"):
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{any_front.base_url}/chat/completions", json=body, timeout=0.2)
        wait_for(lambda: any_front.stats()["in_flight"] == 0, "in_flight back to 0")
    # neither was answered, so neither counts a status; the hang counts when it hangs
    stats = any_front.stats()
    assert {k: stats[k] for k in ("requests", "by_status", "in_flight", "max_in_flight")} == {
        "requests": 2, "by_status": {"hang": 1}, "in_flight": 0, "max_in_flight": 1}


def test_latency_and_max_in_flight(any_front: FakeProvider) -> None:
    any_front.script(latency_ms=150)
    threads = [threading.Thread(target=chat, args=(any_front, "x")) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.monotonic() - started >= 0.14
    stats = any_front.stats()
    assert {k: stats[k] for k in ("requests", "by_status", "in_flight", "max_in_flight")} == {
        "requests": 4, "by_status": {"200": 4}, "in_flight": 0, "max_in_flight": 4}
    # the busy window (first arrival to last answer) and the mean in flight across it
    assert 0.14 <= stats["window_s"] < time.monotonic() - started
    assert 2.0 <= stats["mean_in_flight"] <= 4.0


def test_server_side_rpm_limit(fake_provider: FakeProvider) -> None:
    fake_provider.script(rpm=120, rpm_window_s=1)  # 2 per second
    codes = [chat(fake_provider, "x") for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["retry-after"] == "1"


def test_unknown_script_key_is_an_error(fake_provider: FakeProvider) -> None:
    with pytest.raises(ValueError, match="unknown script keys"):
        fake_provider.script(latency=5)


@pytest.mark.parametrize("front", FRONTS)
def test_process_variant_is_scriptable_over_http(fake_provider_factory: Any, front: str) -> None:
    fake: FakeProviderProcess = fake_provider_factory(front=front)
    assert fake.base_url.endswith("/v1")
    fake.script(status=502, times=1)
    assert chat(fake, "x").status_code == 502
    assert chat(fake, "x").status_code == 200
    assert fake.stats()["requests"] == 2 and len(fake.requests) == 2
    assert httpx.get(f"{fake.base_url}/models").json()["data"][0]["id"] == "fake-model"
    fake.reset()
    assert fake.count == 0


def test_latency_counts_from_arrival_with_the_reply_built_up_front() -> None:
    core = FakeCore(latency_ms=200)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "great"}]}).encode()
    answer = core.decide("POST", "/v1/chat/completions", {}, body, arrived=100.0)
    assert answer.action == "reply" and answer.due == pytest.approx(100.2)
    assert answer.status == 200 and json.loads(answer.payload)["choices"]  # ready before it is due
