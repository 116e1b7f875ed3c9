"""Requests waiting for a limiter slot when a server refuses ``json_schema`` do not send
it again: their bodies are checked against what was refused once they hold a slot, so at
most the requests already in flight at the refusal carry the refused feature."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import LABEL_FORMAT, make_provider, request
from tests.providers.llama_server import LlamaServer

CONCURRENCY = 4
ITEMS = 40
LABEL_ONLY = {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
              "required": ["label"], "additionalProperties": False}


def chat_all(base_url: str, texts: list[str], **options: object) -> list[ChatReply]:
    async def run() -> list[ChatReply]:
        provider = make_provider(base_url, concurrency=CONCURRENCY, **options)
        try:
            return await asyncio.gather(
                *(provider.chat(request(t, response_format=LABEL_FORMAT)) for t in texts)
            )
        finally:
            await provider.aclose()

    return asyncio.run(run())


def sent_formats(fake: FakeProvider) -> list[str]:
    return [r["response_format"]["type"] for r in fake.requests]


def test_queued_requests_do_not_resend_a_refused_json_schema(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema_500")
    fake_provider.script(latency_ms=30)  # every slot is taken when the first refusal comes
    texts = [f"I love it {i}" if i % 2 else f"This is awful {i}" for i in range(ITEMS)]
    replies = chat_all(fake_provider.base_url, texts, max_attempts=1)
    formats = sent_formats(fake_provider)
    # only the requests in flight at the refusal sent json_schema; all the rest json_object
    assert 1 <= formats.count("json_schema") <= CONCURRENCY
    assert formats.count("json_object") == ITEMS
    assert fake_provider.stats()["by_status"]["200"] == ITEMS
    assert [json.loads(r.text)["label"] for r in replies] == [
        "positive" if i % 2 else "negative" for i in range(ITEMS)
    ]
    # a resend for a refused feature is no retry attempt (max_attempts=1), yet counts as a request
    assert sum(r.usage.requests for r in replies) == len(formats)


def test_other_models_still_get_json_schema(fake_provider: FakeProvider) -> None:
    """The refusal is learned per model: a model whose server takes json_schema keeps it."""
    fake_provider.script(fault="reject_json_schema_500", model="fake-model")
    fake_provider.script(latency_ms=20)

    async def run() -> None:
        provider = make_provider(fake_provider.base_url, concurrency=CONCURRENCY)
        try:
            await asyncio.gather(
                *(provider.chat(request(f"great {i}", response_format=LABEL_FORMAT)) for i in range(12)),
                *(provider.chat(request(f"great {i}", response_format=LABEL_FORMAT, model="other"))
                  for i in range(12)),
            )
        finally:
            await provider.aclose()

    asyncio.run(run())
    by_model: dict[str, list[str]] = {}
    for r in fake_provider.requests:
        by_model.setdefault(r["model"], []).append(r["response_format"]["type"])
    assert by_model["other"] == ["json_schema"] * 12
    assert by_model["fake-model"].count("json_schema") <= CONCURRENCY
    assert by_model["fake-model"].count("json_object") == 12


@pytest.mark.local_model
def test_llama_cpp_servers_refusal_reaches_queued_requests(llama_server: LlamaServer) -> None:
    """The example jobs' case: llama-cpp-python's real server answers json_schema with a
    500; at concurrency 4 at most the 4 requests in flight get it, not every queued one."""
    before = len(llama_server.statuses())
    fmt = {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": LABEL_ONLY}}

    async def run() -> list[ChatReply]:
        provider = OpenAICompatProvider(llama_server.base_url, self_hosted=True, concurrency=CONCURRENCY)
        try:
            return await asyncio.gather(*(
                provider.chat(request(f"Review {i}: it was {'great' if i % 2 else 'awful'}.",
                                      response_format=fmt, max_tokens=20))
                for i in range(10)))
        finally:
            await provider.aclose()

    replies = asyncio.run(run())
    statuses = llama_server.statuses()[before:]
    assert 1 <= statuses.count(500) <= CONCURRENCY and statuses.count(200) == 10
    for reply in replies:
        jsonschema.validate(json.loads(reply.text), LABEL_ONLY)
