"""The executor end to end against the scripted fake provider, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest

from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.engine import Executor
from agentflow_jobs.errors import InvalidRequest, ProviderError, UnprocessableEntityError
from agentflow_jobs.providers import build_provider
from agentflow_jobs.wire import CompletionRequest, CompletionResult, ResultRow, Usage
from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import KINDS, asked_schema, provider_block
from tests.fakes.replies import SELF_ESTIMATE_WITH_LOGPROBS

CATS = ["positive", "negative", "mixed"]


# the tests that hold for every provider API run against each fake (tests.fakes.kinds)
BOTH = pytest.mark.parametrize("provider_kind", KINDS, indirect=True)


def provider_config(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return provider_block(fake, api_key="k", model="m", **extra)


def complete(
    fake: FakeProvider,
    *,
    concurrency: int = 8,
    provider: dict[str, Any] | None = None,
    **fields: Any,
) -> CompletionResult:
    async def go() -> CompletionResult:
        executor = Executor(
            build_provider(provider or provider_config(fake)), concurrency=concurrency
        )
        try:
            return await executor.complete(CompletionRequest(**fields))
        finally:
            await executor.aclose()

    return asyncio.run(go())


def stream(
    fake: FakeProvider, request: CompletionRequest, indices: Sequence[int] | None = None
) -> list[ResultRow]:
    async def go() -> list[ResultRow]:
        executor = Executor(build_provider(provider_config(fake)), concurrency=4)
        try:
            async with contextlib.aclosing(executor.stream(request, indices=indices)) as rows:
                return [row async for row in rows]
        finally:
            await executor.aclose()

    return asyncio.run(go())


def sent_for(fake: FakeProvider, text: str) -> list[dict[str, Any]]:
    """The request bodies the fake received whose messages mention ``text``."""
    return [
        body
        for body in fake.requests
        if any(text in str(m.get("content")) for m in body.get("messages", []))
    ]


def results(outcome: CompletionResult) -> list[Any]:
    return [row["result"] for row in outcome.results]


# -- each operation end to end -------------------------------------------------------


@BOTH
def test_classify_labels_each_item_with_a_confidence(chat_fake: FakeProvider) -> None:
    outcome = complete(
        chat_fake,
        operation="classify",
        categories=CATS,
        items=[{"content": "Terrible support, I waited hours"}, {"content": "I love it"}],
    )
    assert [r["label"] for r in results(outcome)] == ["negative", "positive"]
    assert all(0.0 <= r["confidence"] <= 1.0 for r in results(outcome))
    assert outcome.operation == "label" and outcome.model == "m"
    assert chat_fake.count == 2
    schema = asked_schema(chat_fake.requests[0])
    assert schema is not None and schema["properties"]["label"]["enum"] == CATS


def test_label_confidence_comes_from_logprobs_when_the_provider_sends_them(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.script(logprobs=True)
    outcome = complete(
        fake_provider, operation="label", categories=CATS, items=[{"content": "awful"}]
    )
    # the fake gives the chosen label's token 0.9 and its rivals the remaining 0.1, while
    # the reply's own "confidence" says 0.5: the row must carry the logprob value
    assert abs(SELF_ESTIMATE_WITH_LOGPROBS - 0.9) > 0.1
    assert results(outcome) == [{"label": "negative", "confidence": pytest.approx(0.9)}]
    assert fake_provider.requests[0]["logprobs"] is True


@BOTH
def test_extract_with_a_schema_returns_a_valid_object(chat_fake: FakeProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"contact": {"type": "string"}, "seats": {"type": "integer", "minimum": 1}},
        "required": ["contact", "seats"],
    }
    outcome = complete(
        chat_fake,
        operation="extract",
        extraction_instructions="Extract contact and seat count.",
        output_schema=schema,
        items=[{"content": "Sarah Chen wants 500 seats by Q3."}],
    )
    row = outcome.results[0]
    assert row["status"] == "completed"
    assert set(row["result"]) == {"contact", "seats"} and row["result"]["seats"] >= 1


@BOTH
def test_extract_without_a_schema_returns_an_object(chat_fake: FakeProvider) -> None:
    outcome = complete(
        chat_fake,
        operation="extract",
        extraction_instructions="Extract 'contact' and 'company'.",
        items=[{"content": "Sarah Chen, VP Engineering at Acme Corp"}],
    )
    assert asked_schema(chat_fake.requests[0]) is None  # JSON, but no schema to follow
    assert isinstance(results(outcome)[0], dict) and results(outcome)[0]


@BOTH
def test_summarize_returns_a_summary(chat_fake: FakeProvider) -> None:
    outcome = complete(
        chat_fake,
        operation="summarize",
        summary_instructions="Under 20 words.",
        items=[{"content": "A long meeting transcript."}],
    )
    assert list(results(outcome)[0]) == ["summary"]
    assert results(outcome)[0]["summary"]


@BOTH
def test_enrich_returns_typed_fields_with_context(chat_fake: FakeProvider) -> None:
    outcome = complete(
        chat_fake,
        operation="enrich",
        items=[{"content": "Enterprise SaaS company, 500 employees, Series C"}],
        fields=[
            {"name": "segment", "type": "categorical", "valid_values": ["enterprise", "smb"]},
            {"name": "employees", "type": "integer"},
            {"name": "public", "type": "boolean"},
            {"name": "tags", "type": "list"},
        ],
        include_context=True,
    )
    result = results(outcome)[0]
    assert result["segment"] in ("enterprise", "smb")
    assert isinstance(result["employees"], int) and isinstance(result["public"], bool)
    assert isinstance(result["tags"], list)
    assert set(result) == {
        "segment", "segment_context", "employees", "employees_context",
        "public", "public_context", "tags", "tags_context",
    }  # fmt: skip


@BOTH
def test_custom_run_renders_the_template_and_returns_text_or_json(
    chat_fake: FakeProvider,
) -> None:
    text = complete(
        chat_fake,
        operation="feedback_analysis",
        system_prompt="You analyze customer feedback.",
        user_prompt_template="Analyze this feedback:\n\n{content}",
        items=[{"content": "The app is slow"}],
    )
    assert text.operation == "feedback_analysis"
    assert results(text) == [
        {"text": "Fake reply about: analyze this feedback:\n\nthe app is slow"}
    ]
    messages = chat_fake.requests[0]["messages"]
    assert messages[-1]["content"] == "Analyze this feedback:\n\nThe app is slow"
    as_json = complete(
        chat_fake,
        operation="run",
        user_prompt_template="Give 'topic' for: {content}",
        response_format={"type": "json_object"},
        items=[{"content": "The app is slow"}],
    )
    assert isinstance(results(as_json)[0], dict)


# -- bad replies -----------------------------------------------------------------------


@BOTH
def test_a_wrong_label_is_re_asked_once_then_fails_as_invalid_output(
    chat_fake: FakeProvider,
) -> None:
    chat_fake.script(fault="wrong_label", match="waited three hours")
    outcome = complete(
        chat_fake,
        operation="classify",
        categories=CATS,
        items=[{"content": "I love it"}, {"content": "Terrible, I waited three hours"}],
    )
    good, bad = outcome.results
    assert good["status"] == "completed"
    assert bad["status"] == "failed" and bad["result"] is None
    assert bad["error"]["code"] == "invalid_output"
    assert "'not_a_valid_label' is not one of the categories" in bad["error"]["message"]
    asked = sent_for(chat_fake, "waited three hours")
    assert len(asked) == 2
    assert "not_a_valid_label" in asked[1]["messages"][-1]["content"]
    assert bad["usage"]["requests"] == 2


@BOTH
def test_a_re_ask_that_succeeds_completes_the_row(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="wrong_label", times=1)
    outcome = complete(
        chat_fake, operation="classify", categories=CATS, items=[{"content": "great"}]
    )
    # no logprobs in the reply, so the model's own estimate is kept (the fake says 0.5
    # to a request that asked for logprobs; Anthropic's API has none to ask for: 0.9)
    own = SELF_ESTIMATE_WITH_LOGPROBS if chat_fake.kind == "openai" else 0.9
    assert results(outcome) == [{"label": "positive", "confidence": pytest.approx(own)}]
    assert chat_fake.count == 2
    assert outcome.usage.requests == 2


@BOTH
def test_prose_instead_of_json_fails_as_invalid_output(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="non_json")
    outcome = complete(chat_fake, operation="summarize", items=[{"content": "x"}])
    # prose is an acceptable summary; JSON-only operations reject it
    assert outcome.results[0]["status"] == "completed"
    outcome = complete(
        chat_fake, operation="extract", extraction_instructions="x", items=[{"content": "x"}]
    )
    assert outcome.results[0]["error"]["code"] == "invalid_output"


@BOTH
def test_a_truncated_summary_is_invalid_output(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="truncated")
    outcome = complete(chat_fake, operation="summarize", items=[{"content": "long text"}])
    assert outcome.results[0]["error"]["code"] == "invalid_output"
    assert "cut off" in outcome.results[0]["error"]["message"]
    assert chat_fake.count == 2


@BOTH
def test_a_malformed_provider_reply_fails_the_item_with_the_provider_code(
    chat_fake: FakeProvider,
) -> None:
    chat_fake.script(fault="malformed", match="broken one")
    outcome = complete(
        chat_fake,
        provider=provider_config(chat_fake, max_attempts=2),
        operation="classify",
        categories=CATS,
        items=[{"content": "fine one"}, {"content": "broken one"}],
    )
    assert outcome.results[0]["status"] == "completed"
    assert outcome.results[1]["error"]["code"] == "provider_error"
    assert len(sent_for(chat_fake, "broken one")) == 2  # the provider's attempts, no more


@BOTH
def test_one_bad_item_never_fails_the_others(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="non_json", match="item 17")
    chat_fake.script(status=400, match="item 31")
    items = [{"content": f"item {i}", "id": f"r{i}"} for i in range(60)]
    outcome = complete(
        chat_fake,
        operation="extract",
        extraction_instructions="x",
        id_field="id",
        items=items,
    )
    failed = {r["index"]: r["error"]["code"] for r in outcome.results if r["status"] == "failed"}
    assert failed == {17: "invalid_output", 31: "bad_request"}
    assert [r["index"] for r in outcome.results] == list(range(60))
    assert [r["id"] for r in outcome.results] == [f"r{i}" for i in range(60)]


# -- bad items -------------------------------------------------------------------------


@BOTH
def test_a_missing_template_field_fails_only_that_item_without_a_request(
    chat_fake: FakeProvider,
) -> None:
    outcome = complete(
        chat_fake,
        operation="run",
        user_prompt_template="{title}: {content}",
        items=[{"title": "a", "content": "b"}, {"content": "no title"}],
    )
    assert outcome.results[0]["status"] == "completed"
    assert outcome.results[1]["error"] == {
        "code": "missing_field",
        "message": "item has no field 'title' used by user_prompt_template",
    }
    assert chat_fake.count == 1


@BOTH
def test_empty_and_oversized_content_fail_without_a_request(chat_fake: FakeProvider) -> None:
    outcome = complete(
        chat_fake,
        operation="classify",
        categories=CATS,
        items=[{"content": "  "}, {"content": "x" * 100_001}, {"content": "good"}],
    )
    codes = [r["error"]["code"] if r["error"] else None for r in outcome.results]
    assert codes == ["empty_content", "item_too_large", None]
    assert chat_fake.count == 1


def test_a_broken_request_raises_before_anything_is_sent(fake_provider: FakeProvider) -> None:
    with pytest.raises(UnprocessableEntityError, match="attribute access") as caught:
        complete(
            fake_provider,
            operation="run",
            user_prompt_template="{content.__init__.__globals__}",
            items=[{"content": "x"}],
        )
    assert isinstance(caught.value, InvalidRequest) and caught.value.status_code == 422
    assert fake_provider.count == 0


@BOTH
def test_rejected_credentials_fail_the_request_as_a_whole(chat_fake: FakeProvider) -> None:
    chat_fake.script(status=401)
    with pytest.raises(ProviderError) as caught:
        complete(
            chat_fake,
            concurrency=2,
            operation="classify",
            categories=CATS,
            items=[{"content": f"item {i}"} for i in range(50)],
        )
    assert caught.value.code == "auth"
    assert chat_fake.count <= 4  # the workers stop taking items


# -- throughput and accounting -------------------------------------------------------------


@BOTH
def test_concurrency_bounds_the_requests_in_flight(chat_fake: FakeProvider) -> None:
    chat_fake.script(latency_ms=40)
    outcome = complete(
        chat_fake,
        concurrency=5,
        operation="classify",
        categories=CATS,
        items=[{"content": f"good {i}"} for i in range(30)],
    )
    assert all(r["status"] == "completed" for r in outcome.results)
    assert chat_fake.max_in_flight == 5


@BOTH
def test_usage_sums_every_attempt(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="wrong_label", match="bad apple")
    outcome = complete(
        chat_fake,
        operation="classify",
        categories=CATS,
        items=[{"content": "good"}, {"content": "bad apple"}, {"content": "  "}],
    )
    rows = outcome.results
    assert [r["usage"]["requests"] for r in rows] == [1, 2, 0]
    assert outcome.usage.requests == chat_fake.count == 3
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(outcome.usage, key) == sum(r["usage"][key] for r in rows) > 0
    assert rows[1]["usage"]["prompt_tokens"] > rows[0]["usage"]["prompt_tokens"]


def test_stream_yields_every_row_with_the_given_indices(fake_provider: FakeProvider) -> None:
    request = CompletionRequest(
        operation="classify", categories=CATS, items=[{"content": f"good {i}"} for i in range(10)]
    )
    rows = stream(fake_provider, request, indices=list(range(100, 110)))
    assert sorted(r["index"] for r in rows) == list(range(100, 110))
    assert all(r["status"] == "completed" for r in rows)


# -- the executor's own guarantees, with a provider that is not HTTP -------------------


class Flaky:
    """A provider peer that crashes on one item and answers the rest at once."""

    name: str = "flaky"
    default_model: str | None = "flaky-1"

    def __init__(self) -> None:
        self.in_flight = self.max_in_flight = self.calls = 0

    async def chat(self, request: ChatRequest) -> ChatReply:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            if "crash" in request.messages[-1]["content"]:
                raise RuntimeError("boom")
            return ChatReply('{"label": "positive", "confidence": 1}', Usage(prompt_tokens=1))
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        pass


def test_an_unexpected_error_in_one_item_is_an_internal_error_row() -> None:
    provider = Flaky()
    items = [{"content": "crash" if i == 3 else "ok"} for i in range(8)]
    request = CompletionRequest(operation="label", categories=CATS, items=items)
    outcome = asyncio.run(Executor(provider, concurrency=3).complete(request))
    codes = [r["error"]["code"] if r["error"] else None for r in outcome.results]
    assert codes == [None, None, None, "internal_error", None, None, None, None]
    assert "RuntimeError: boom" in outcome.results[3]["error"]["message"]
    assert outcome.model == "flaky-1"
    assert provider.max_in_flight == 3


def test_stopping_early_stops_sending() -> None:
    provider = Flaky()
    request = CompletionRequest(
        operation="label", categories=CATS, items=[{"content": "ok"}] * 1000
    )

    async def take_five() -> list[ResultRow]:
        taken: list[ResultRow] = []
        async with contextlib.aclosing(Executor(provider, concurrency=4).stream(request)) as rows:
            async for row in rows:
                taken.append(row)
                if len(taken) == 5:
                    break
        return taken

    assert len(asyncio.run(take_five())) == 5
    assert provider.calls < 20
    assert provider.in_flight == 0


# -- provider faults, seen from the rows ------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"status": 429, "retry_after_ms": 5}, "rate_limited"),
        ({"status": 500, "retry_after_ms": 5}, "provider_error"),
        ({"status": 503, "retry_after": 0}, "provider_error"),
        ({"status": 529, "retry_after_ms": 5}, "provider_error"),  # Anthropic: overloaded
    ],
)
def test_a_fault_that_never_clears_fails_only_its_row_after_max_attempts(
    chat_fake: FakeProvider, rule: dict[str, Any], code: str
) -> None:
    chat_fake.script(match="stuck one", **rule)
    outcome = complete(
        chat_fake,
        operation="classify",
        categories=CATS,
        items=[{"content": "fine one"}, {"content": "stuck one"}],
    )
    fine, stuck = outcome.results
    assert fine["status"] == "completed"
    assert stuck["error"]["code"] == code
    assert "gave up after 3 attempts" in stuck["error"]["message"]
    assert len(sent_for(chat_fake, "stuck one")) == 3
    assert stuck["usage"]["requests"] == 3  # every paid-or-not request is counted
    assert outcome.usage.requests == chat_fake.count == 4


@BOTH
def test_the_requests_max_attempts_bounds_the_providers_retries(chat_fake: FakeProvider) -> None:
    chat_fake.script(status=500, retry_after_ms=5)
    outcome = complete(
        chat_fake,
        provider=provider_config(chat_fake, max_attempts=5),
        operation="classify",
        categories=CATS,
        max_attempts=1,
        items=[{"content": "only once"}],
    )
    assert outcome.results[0]["error"]["code"] == "provider_error"
    assert chat_fake.count == 1


@BOTH
def test_a_hung_provider_fails_the_row_as_a_timeout(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="hang", match="never answered")
    outcome = complete(
        chat_fake,
        provider=provider_config(chat_fake, timeout=0.3, max_attempts=2),
        operation="classify",
        categories=CATS,
        items=[{"content": "answered"}, {"content": "never answered"}],
    )
    answered, hung = outcome.results
    assert answered["status"] == "completed"
    assert hung["error"]["code"] == "timeout"
    assert len(sent_for(chat_fake, "never answered")) == 2


@BOTH
def test_a_truncated_label_is_re_asked_then_invalid_output(chat_fake: FakeProvider) -> None:
    chat_fake.script(fault="truncated")
    outcome = complete(chat_fake, operation="classify", categories=CATS, items=[{"content": "x"}])
    error = outcome.results[0]["error"]
    assert error["code"] == "invalid_output" and "cut off" in error["message"]
    assert chat_fake.count == 2


@BOTH
@pytest.mark.parametrize(
    ("fault", "said"),
    [("refusal", "I can't help with that."), ("content_filter", "content filter")],
)
def test_a_declined_reply_fails_its_row_as_refused_without_a_re_ask(
    chat_fake: FakeProvider, fault: str, said: str
) -> None:
    if chat_fake.kind == "anthropic":  # no content filter: a refusal stop, the model's words
        said = "I can't help with that."
    chat_fake.script(fault=fault, match="touchy")
    outcome = complete(
        chat_fake,
        operation="extract",
        extraction_instructions="names",
        items=[{"content": "plain"}, {"content": "touchy"}],
    )
    plain, touchy = outcome.results
    assert plain["status"] == "completed"
    assert touchy["error"]["code"] == "refused"
    assert touchy["error"]["message"].startswith("the model declined: ") and said in touchy["error"]["message"]
    assert len(sent_for(chat_fake, "touchy")) == 1 and touchy["usage"]["requests"] == 1


def test_labels_complete_on_a_server_without_json_schema(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    outcome = complete(
        fake_provider,
        concurrency=1,
        operation="classify",
        categories=CATS,
        items=[{"content": "great stuff"}, {"content": "awful stuff"}, {"content": "meh"}],
    )
    assert [r["status"] for r in outcome.results] == ["completed"] * 3
    assert all(r["result"]["label"] in CATS for r in outcome.results)
    formats = [r["response_format"]["type"] for r in fake_provider.requests]
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]


def test_an_error_hitting_every_item_is_logged_once_and_kept_in_every_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    items = [{"content": f"crash {i}"} for i in range(50)]
    request = CompletionRequest(operation="label", categories=CATS, items=items)

    async def twice() -> list[CompletionResult]:  # a runner sends a job as many requests
        executor = Executor(Flaky(), concurrency=8)
        return [await executor.complete(request), await executor.complete(request)]

    for outcome in asyncio.run(twice()):
        assert all(r["error"]["code"] == "internal_error" for r in outcome.results)
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("item failed unexpectedly") == 1


@pytest.mark.parametrize(
    "rule",
    [{"status": 503, "retry_after_ms": 5, "times": 1}, {"fault": "reject_json_schema", "times": 1}],
)
def test_a_row_answered_after_a_retry_or_a_fallback_counts_both_requests(
    fake_provider: FakeProvider, rule: dict[str, Any]
) -> None:
    fake_provider.script(**rule)
    outcome = complete(fake_provider, operation="classify", categories=CATS, items=[{"content": "good"}])
    row = outcome.results[0]
    assert row["status"] == "completed"
    assert row["usage"]["requests"] == fake_provider.count == 2
