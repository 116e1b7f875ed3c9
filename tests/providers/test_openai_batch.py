"""OpenAI's Batch API client against the fake's files + batches over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.chat import ChatRequest
from agentflow_jobs.errors import ConfigError, ProviderError
from agentflow_jobs.providers import batch_settings, build_batch_api, check_provider_keys
from agentflow_jobs.providers.batch_api import BatchAPI, BatchLine, LineOutcome, RemoteBatch
from agentflow_jobs.providers.openai_batch import OpenAIBatchAPI
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from tests.fakes.handles import FakeProvider

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02, max_retry_after=0.05)
SCHEMA = {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": {
    "type": "object", "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
    "required": ["label"], "additionalProperties": False}}}


def _lines(count: int, start: int = 0) -> list[BatchLine]:
    return [BatchLine(f"i{i}", ChatRequest(messages=[{"role": "user", "content": f"item {i}: great"}],
                                           response_format=SCHEMA)) for i in range(start, start + count)]


def _api(fake: FakeProvider) -> OpenAIBatchAPI:
    return OpenAIBatchAPI(fake.base_url, "sk-test", "fake-model", retry=FAST)


async def _run(api: OpenAIBatchAPI, lines: list[BatchLine],
               metadata: dict[str, str] | None = None) -> tuple[RemoteBatch, list[LineOutcome]]:
    upload = await api.upload(lines)
    batch = await api.create(lines, upload, metadata or {"chunk": "0"})
    while batch.phase != "ended":
        await asyncio.sleep(0.02)
        batch = await api.retrieve(batch.id)
    return batch, [outcome async for outcome in api.results(batch)]


def test_a_line_body_is_the_sync_body_and_answers_come_back_by_custom_id(fake_provider: FakeProvider) -> None:
    api = _api(fake_provider)
    assert isinstance(api, BatchAPI)
    line = _lines(1)[0]
    sync_body = OpenAICompatProvider(fake_provider.base_url, model="fake-model").payload(line.chat)
    assert json.loads(api.encode(line))["body"] == sync_body

    async def go() -> tuple[RemoteBatch, list[LineOutcome]]:
        try:
            return await _run(api, _lines(30))
        finally:
            await api.aclose()

    batch, outcomes = asyncio.run(go())
    assert (batch.status, batch.total, batch.succeeded) == ("completed", 30, 30)
    assert sorted(o.custom_id for o in outcomes) == sorted(f"i{i}" for i in range(30))
    assert all(o.reply is not None and json.loads(o.reply.text)["label"] == "positive" for o in outcomes)
    assert all(o.paid and o.reply and o.reply.usage.prompt_tokens > 0 for o in outcomes)
    stats = fake_provider.batch_stats()
    assert stats["batches_created"] == 1 and stats["lines_answered"] == 30 and stats["chat_requests"] == 0


def test_error_file_quirks_expired_lines_and_no_output_file(fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(error_status={"match": "item 3:", "status_code": 500}, shuffle=True)
    api = _api(fake_provider)

    async def go() -> list[list[LineOutcome]]:
        found = [(await _run(api, _lines(10)))[1]]
        fake_provider.batch_script(replace=True, outcome="expired", answer_share=0.6)
        found.append((await _run(api, _lines(10)))[1])
        fake_provider.batch_script(replace=True, no_output_file=True,
                                   error_status={"match": "item", "status_code": 400})
        batch, outcomes = await _run(api, _lines(3))
        assert batch.status == "completed" and "output_file_id" not in batch.raw
        found.append(outcomes)
        await api.aclose()
        return found

    quirky, expired, only_errors = asyncio.run(go())
    by_id = {o.custom_id: o for o in quirky}
    # error: null with HTTP 500 inside the response is a failure, not an answer, and unpaid
    assert by_id["i3"].reply is None and by_id["i3"].code == "provider_error" and not by_id["i3"].paid
    assert "500" in (by_id["i3"].message or "")
    assert sum(o.reply is not None for o in quirky) == 9
    assert sum(o.reply is not None for o in expired) == 6
    assert sorted(o.code or "" for o in expired if o.reply is None) == ["expired"] * 4
    assert [o.code for o in only_errors] == ["bad_request"] * 3


def test_find_returns_the_batch_made_with_that_metadata_across_pages(fake_provider: FakeProvider) -> None:
    api = _api(fake_provider)

    async def go() -> tuple[Any, Any, Any]:
        upload = await api.upload(_lines(1))
        first = await api.create([], upload, {"job": "a", "chunk": "0"})
        for n in range(120):  # more than a page of newer batches
            await api.create([], upload, {"job": "b", "chunk": str(n)})
        found = await api.find({"job": "a", "chunk": "0"})
        missing = await api.find({"job": "a", "chunk": "1"})
        await api.aclose()
        return first, found, missing

    first, found, missing = asyncio.run(go())
    assert found is not None and found.id == first.id and missing is None
    assert fake_provider.batch_stats()["routes"]["list"] == 4  # two pages per search


def test_control_calls_retry_429_and_5xx_but_create_is_left_to_the_engine(fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(control=[{"route": "upload", "status": 503, "times": 2},
                                        {"route": "retrieve", "status": 429, "times": 2, "retry_after": 0.01},
                                        {"route": "create", "status": 500, "times": 1}])
    api = _api(fake_provider)

    async def go() -> tuple[str | None, RemoteBatch]:
        upload = await api.upload(_lines(2))
        with pytest.raises(ProviderError) as failed:
            await api.create(_lines(2), upload, {"c": "1"})
        assert failed.value.status_code == 500
        batch = await api.create(_lines(2), upload, {"c": "1"})
        batch = await api.retrieve(batch.id)
        await api.aclose()
        return upload, batch

    upload, batch = asyncio.run(go())
    assert upload and batch.status == "completed"
    assert fake_provider.batch_stats()["routes"] == {"upload": 3, "create": 2, "retrieve": 3}


def test_the_fake_refuses_files_the_real_api_refuses(fake_provider: FakeProvider) -> None:
    api = _api(fake_provider)
    twice = [*_lines(2), _lines(1)[0]]
    mixed = [*_lines(1), BatchLine("other", ChatRequest(messages=[{"role": "user", "content": "x"}],
                                                        model="another-model"))]

    async def go() -> list[RemoteBatch]:
        out = [(await _run(api, lines))[0] for lines in (twice, mixed)]
        await api.aclose()
        return out

    duplicate, models = asyncio.run(go())
    assert duplicate.status == "failed" and "duplicate_custom_id" in json.dumps(duplicate.raw["errors"])
    assert models.status == "failed" and "mismatched_model" in json.dumps(models.raw["errors"])


def test_cancel_keeps_what_the_batch_answered(fake_provider: FakeProvider) -> None:
    fake_provider.batch_script(in_progress_s=30, cancel_share=0.5)
    api = _api(fake_provider)

    async def go() -> tuple[RemoteBatch, list[LineOutcome]]:
        upload = await api.upload(_lines(8))
        batch = await api.create(_lines(8), upload, {"c": "x"})
        batch = await api.cancel(batch.id)
        while batch.phase != "ended":
            batch = await api.retrieve(batch.id)
        outcomes = [o async for o in api.results(batch)]
        await api.discard(batch, upload)
        await api.aclose()
        return batch, outcomes

    batch, outcomes = asyncio.run(go())
    assert batch.status == "cancelled"
    assert sum(o.reply is not None for o in outcomes) == 4
    assert {o.code for o in outcomes if o.reply is None} == {"cancelled"}
    assert fake_provider.batch_stats()["files_live"] == 0


def test_unknown_provider_keys_and_bad_batch_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"provider\.bacth.*did you mean `batch`"):
        check_provider_keys({"type": "openai", "bacth": "native"})
    with pytest.raises(ConfigError, match=r"provider\.batch: must be engine or native"):
        batch_settings({"batch": "yes"})
    with pytest.raises(ConfigError, match=r"provider\.batch:.*no batch API"):
        batch_settings({"type": "local", "batch": "native"})
    with pytest.raises(ConfigError, match=r"provider\.batch_max_requests"):
        batch_settings({"batch": "native", "batch_max_requests": 0})
    assert build_batch_api({"base_url": "http://127.0.0.1:1/v1"}) is None
    api = build_batch_api({"base_url": "http://127.0.0.1:1/v1", "batch": "native", "batch_max_requests": 500})
    assert api is not None and api.limits.max_requests == 500 and api.limits.max_bytes == 200 * 1024 * 1024
