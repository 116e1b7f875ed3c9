"""The offline provider on the real packaged model (Gemma 3 270M through llama.cpp).

The model is loaded once for the module; every test then sends a few items through the
real operations (build → LocalProvider.chat → parse) and checks what a user sees.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.errors import ConfigError
from agentflow_jobs.operations import get_operation
from agentflow_jobs.wire import CompletionRequest

needs_model = pytest.mark.usefixtures("offline_model")

REVIEWS = [
    "Absolutely wonderful kettle, boils fast and looks great. I love it.",
    "Terrible. It broke after two days and support never answered.",
    "Good picture quality, but the remote stopped working after a week.",
]
CONTACTS = [
    "Laura Finch is the Head of Finance at Meadowlark Foods.",
    "Victor Hale, CTO of Quartzline, replied to our email.",
]
COMPANIES = [
    "A small family bakery with 4 employees.",
    "A multinational insurer with 90,000 employees in 40 countries.",
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from agentflow_jobs.providers.local import LocalProvider

    cache = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        # the packaged model is reassembled under the cache dir on first use, not in ~
        patch.setenv("XDG_CACHE_HOME", str(cache))
        local = LocalProvider({"type": "local"})
        warm = CompletionRequest(
            operation="label", items=[{"content": "ok"}], categories=["a", "b"]
        )
        asyncio.run(local.chat(get_operation("label").prepare(warm).build({"content": "ok"})))
    yield local
    asyncio.run(local.aclose())


def run_operation(
    provider: Any, request: CompletionRequest
) -> tuple[list[dict[str, Any]], list[ChatReply]]:
    bound = get_operation(request.operation).prepare(request)

    async def go() -> tuple[list[dict[str, Any]], list[ChatReply]]:
        replies = [await provider.chat(bound.build(item)) for item in request.items]
        return [bound.parse(i, r) for i, r in zip(request.items, replies, strict=True)], replies

    return asyncio.run(go())


def assert_schema_valid(replies: list[ChatReply], schema: dict[str, Any]) -> None:
    for reply in replies:
        jsonschema.validate(json.loads(reply.text), schema)


@needs_model
@pytest.mark.local_model
def test_label_answers_within_categories_with_probabilities(provider: Any) -> None:
    request = CompletionRequest(
        operation="classify",
        items=[{"content": t} for t in REVIEWS],
        categories=["positive", "negative", "mixed"],
    )
    results, replies = run_operation(provider, request)
    assert_schema_valid(replies, get_operation("label").response_schema(request) or {})
    assert [r["label"] for r in results][:2] == ["positive", "negative"]
    for result, reply in zip(results, replies, strict=True):
        probs = reply.choice_probs or {}
        assert set(probs) == {"positive", "negative", "mixed"}
        assert sum(probs.values()) == pytest.approx(1.0)
        assert result["confidence"] == pytest.approx(probs[result["label"]], abs=1e-3)
        assert reply.usage.prompt_tokens > 20 and reply.usage.completion_tokens >= 1


@needs_model
@pytest.mark.local_model
def test_extract_fills_the_schema_from_the_sentence(provider: Any) -> None:
    schema = {
        "type": "object",
        "required": ["name", "title", "company"],
        "properties": {k: {"type": "string"} for k in ("name", "title", "company")},
    }
    request = CompletionRequest(
        operation="extract", items=[{"content": t} for t in CONTACTS], output_schema=schema
    )
    results, replies = run_operation(provider, request)
    assert_schema_valid(replies, schema)
    assert results[0]["name"] == "Laura Finch"
    assert all(r["company"] for r in results)
    assert all(r.usage.completion_tokens > 5 for r in replies)


@needs_model
@pytest.mark.local_model
def test_enrich_categorical_field_is_one_of_the_valid_values(provider: Any) -> None:
    field = {
        "name": "segment",
        "type": "categorical",
        "valid_values": ["enterprise", "mid-market", "smb"],
    }
    count = {"name": "employees", "type": "integer"}
    request = CompletionRequest(
        operation="enrich", items=[{"content": t} for t in COMPANIES], fields=[field, count]
    )
    results, replies = run_operation(provider, request)
    assert_schema_valid(replies, get_operation("enrich").response_schema(request) or {})
    assert all(r["segment"] in field["valid_values"] for r in results)
    assert all(isinstance(r["employees"], int) for r in results)


@needs_model
@pytest.mark.local_model
def test_summarize_and_run_reply_with_parseable_json(provider: Any) -> None:
    text = "The city council approved a new park on Main Street. Work starts in May."
    summary, _ = run_operation(
        provider, CompletionRequest(operation="summarize", items=[{"content": text}])
    )
    assert isinstance(summary[0]["summary"], str) and summary[0]["summary"].strip()
    schema = {
        "type": "object",
        "properties": {"headline": {"type": "string"}},
        "required": ["headline"],
    }
    run = CompletionRequest(
        operation="headline",
        items=[{"content": text}],
        user_prompt_template="Write a headline for: {content}",
        response_format={"type": "json_schema", "json_schema": {"name": "h", "schema": schema}},
    )
    results, replies = run_operation(provider, run)
    assert_schema_valid(replies, schema)
    assert isinstance(results[0]["headline"], str)


@needs_model
@pytest.mark.local_model
def test_chat_never_blocks_the_event_loop(provider: Any) -> None:
    request = CompletionRequest(
        operation="label",
        items=[{"content": t} for t in REVIEWS],
        categories=["positive", "negative", "mixed"],
    )
    bound = get_operation("label").prepare(request)

    async def go() -> tuple[int, list[ChatReply]]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        replies = await asyncio.gather(*(provider.chat(bound.build(i)) for i in request.items))
        task.cancel()
        return ticks, list(replies)

    ticks, replies = asyncio.run(go())
    assert len(replies) == 3 and ticks > 3


@needs_model
@pytest.mark.local_model
def test_missing_model_file_is_a_config_error(tmp_path: Any) -> None:
    from agentflow_jobs.providers.local import LocalProvider

    with pytest.raises(ConfigError, match="no GGUF model file"):
        LocalProvider({"type": "local", "model_path": str(tmp_path / "nope.gguf")})


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentflow_jobs.providers.local import LocalProvider

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ConfigError) as error:
        LocalProvider({"type": "local"})
    assert "pip install -e '.[local]'" in str(error.value)
    assert "OPENAI_BASE_URL" in str(error.value)
