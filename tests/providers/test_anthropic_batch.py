"""Anthropic's Message Batches through ``AnthropicBatchAPI`` against the Anthropic fake over
HTTP: create, poll, results in any order, errored/canceled/expired lines, finding a batch
again after a crash."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from agentflow_jobs.backoff import RetryPolicy
from agentflow_jobs.errors import ProviderError
from agentflow_jobs.operations import get_operation
from agentflow_jobs.providers.anthropic import AnthropicProvider
from agentflow_jobs.providers.anthropic_batch import RESULTS_RETENTION_S, AnthropicBatchAPI
from agentflow_jobs.providers.batch_api import BatchAPI, BatchLine, LineOutcome, RemoteBatch
from agentflow_jobs.wire import CompletionRequest
from tests.fakes.anthropic import FakeAnthropic

T = TypeVar("T")
KEY = "sk-ant-SECRET-0123456789"
REVIEWS = ["I love it", "Terrible support", "Great screen", "Awful battery", "Good value"]
LABEL = CompletionRequest(operation="label", categories=["positive", "negative"], items=[{"content": "x"}])


def lines(texts: list[str] = REVIEWS) -> list[BatchLine]:
    bound = get_operation("label").prepare(LABEL)
    return [BatchLine(f"item-{i}", bound.build({"content": t})) for i, t in enumerate(texts)]


def run(fake: FakeAnthropic, work: Callable[[AnthropicBatchAPI], Awaitable[T]]) -> T:
    async def go() -> T:
        api = AnthropicBatchAPI(fake.base_url, KEY, "claude-haiku-4-5",
                                retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
        try:
            return await work(api)
        finally:
            await api.aclose()

    return asyncio.run(go())


def meta(chunk: int = 0, **extra: Any) -> dict[str, str]:
    return {"agentflow_batch": "batch_1", "agentflow_chunk": str(chunk), "agentflow_key": f"k{chunk}", **extra}


async def until_ended(api: AnthropicBatchAPI, batch: RemoteBatch) -> tuple[list[str], RemoteBatch]:
    phases = [batch.phase]
    while batch.phase != "ended":
        await asyncio.sleep(0.02)
        batch = await api.retrieve(batch.id)
        phases.append(batch.phase)
    return phases, batch


async def outcomes(api: AnthropicBatchAPI, batch: RemoteBatch) -> list[LineOutcome]:
    return [o async for o in api.results(batch)]


def test_a_batch_runs_and_every_line_comes_back_answered(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(in_progress_s=0.2)

    async def work(api: AnthropicBatchAPI) -> tuple[list[str], RemoteBatch, list[LineOutcome]]:
        assert isinstance(api, BatchAPI) and await api.upload(lines()) is None
        created = await api.create(lines(), None, meta())
        phases, ended = await until_ended(api, created)
        return phases, ended, await outcomes(api, ended)

    phases, ended, got = run(fake_anthropic, work)
    assert phases[:2] == ["running", "running"] and phases[-1] == "ended"
    assert (ended.total, ended.succeeded, ended.failed) == (5, 5, 0)
    # the fake serves results in reverse order; each comes back under its own custom_id
    assert [o.custom_id for o in got] == [f"item-{i}" for i in reversed(range(5))]
    labels = {o.custom_id: json.loads(o.reply.text)["label"] for o in got if o.reply is not None}
    assert labels == {"item-0": "positive", "item-1": "negative", "item-2": "positive",
                      "item-3": "negative", "item-4": "positive"}
    assert all(o.paid and o.reply is not None and o.reply.usage.prompt_tokens > 0 for o in got)
    stats = fake_anthropic.batch_stats()
    assert (stats["batches_created"], stats["lines_run"], stats["chat_requests"]) == (1, 5, 0)


def test_each_lines_params_are_exactly_the_sync_body(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> None:
        await api.create(lines(), None, meta())

    run(fake_anthropic, work)
    provider = AnthropicProvider(fake_anthropic.base_url, api_key=KEY, model="claude-haiku-4-5")
    sent = fake_anthropic.batch_requests[0]["requests"]
    assert [r["params"] for r in sent] == [provider.payload(line.chat) for line in lines()]
    assert all(r["custom_id"].endswith(f"_item-{i}") for i, r in enumerate(sent))


def test_the_batch_says_when_its_results_go(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> RemoteBatch:
        return await api.create(lines(), None, meta())

    before = time.time()
    batch = run(fake_anthropic, work)
    assert batch.expires_at is not None
    assert before - 2 <= batch.expires_at - RESULTS_RETENTION_S <= time.time() + 2  # 29 days
    assert batch.raw["processing_expires_at"] == pytest.approx(batch.expires_at - 28 * 86_400, abs=1)
    assert batch.raw["results_until"] == batch.expires_at


def test_errored_lines_are_unpaid_outcomes_with_their_code(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(status=400, match="Terrible", body="prompt is too long")
    fake_anthropic.script(status=529, match="Awful")

    async def work(api: AnthropicBatchAPI) -> tuple[RemoteBatch, list[LineOutcome]]:
        _, ended = await until_ended(api, await api.create(lines(), None, meta()))
        return ended, await outcomes(api, ended)

    ended, got = run(fake_anthropic, work)
    assert (ended.succeeded, ended.failed) == (3, 2)
    by_id = {o.custom_id: o for o in got}
    assert (by_id["item-1"].code, by_id["item-1"].paid) == ("bad_request", False)
    assert "prompt is too long" in str(by_id["item-1"].message)
    assert (by_id["item-3"].code, by_id["item-3"].paid) == ("provider_error", False)
    assert sum(o.paid for o in got) == 3


def test_a_cancelled_batch_keeps_what_it_answered(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(in_progress_s=60, cancel_share=0.4, cancelling_s=0.1)

    async def work(api: AnthropicBatchAPI) -> tuple[str, list[str], list[LineOutcome]]:
        created = await api.create(lines(), None, meta())
        cancelling = await api.cancel(created.id)
        phases, ended = await until_ended(api, cancelling)
        return cancelling.phase, phases, await outcomes(api, ended)

    phase, phases, got = run(fake_anthropic, work)
    assert phase == "ending" and phases[-1] == "ended"
    assert sorted(o.custom_id for o in got if o.paid) == ["item-0", "item-1"]
    assert {o.code for o in got if not o.paid} == {"canceled"}


def test_an_expired_batch_gives_its_partial_results(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(outcome="expired", answer_share=0.6)

    async def work(api: AnthropicBatchAPI) -> tuple[RemoteBatch, list[LineOutcome]]:
        _, ended = await until_ended(api, await api.create(lines(), None, meta()))
        return ended, await outcomes(api, ended)

    ended, got = run(fake_anthropic, work)
    assert (ended.succeeded, ended.failed, ended.status) == (3, 2, "expired")
    assert sorted(o.custom_id for o in got if o.paid) == ["item-0", "item-1", "item-2"]
    assert sorted((o.custom_id, o.code) for o in got if not o.paid) == [("item-3", "expired"), ("item-4", "expired")]


def test_a_running_batch_is_found_again_by_its_intent_time_and_size(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(in_progress_s=60)
    tagged = meta(agentflow_lines="5", agentflow_intent_at=str(time.time()))

    async def work(api: AnthropicBatchAPI) -> tuple[str, RemoteBatch | None, RemoteBatch | None]:
        created = await api.create(lines(), None, tagged)  # the crash: this id was never recorded
        other_size = meta(1, agentflow_lines="3", agentflow_intent_at=tagged["agentflow_intent_at"])
        return created.id, await api.find(tagged), await api.find(other_size)

    created, found, other = run(fake_anthropic, work)
    assert found is not None and found.id == created and found.phase == "running"
    assert other is None


def test_an_ended_batch_is_found_by_the_tag_in_its_results(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> tuple[str, RemoteBatch | None, RemoteBatch | None]:
        mine = await api.create(lines(), None, meta(0))
        await api.create(lines(), None, meta(1))
        await until_ended(api, mine)
        for listed in (await api._call("GET", "/v1/messages/batches"))["data"]:
            await api.retrieve(listed["id"])  # both end
        return mine.id, await api.find(meta(0)), await api.find(meta(2))

    mine, found, never = run(fake_anthropic, work)
    assert found is not None and found.id == mine and never is None


def test_running_batches_that_cannot_be_told_apart_are_never_guessed(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(in_progress_s=60)

    async def work(api: AnthropicBatchAPI) -> None:
        await api.create(lines(), None, meta(0))
        await api.find(meta(0))  # no intent time or size to go by, and it is still running

    with pytest.raises(ProviderError, match="cannot be told apart") as caught:
        run(fake_anthropic, work)
    assert caught.value.retryable  # the engine looks again later; it never creates another


def test_results_refuse_a_batch_that_is_another_chunks(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> list[LineOutcome]:
        _, ended = await until_ended(api, await api.create(lines(), None, meta(0)))
        theirs = RemoteBatch(ended.id, "ended", "ended", metadata=meta(1), raw=ended.raw)
        return await outcomes(api, theirs)

    with pytest.raises(ProviderError, match="another chunk"):
        run(fake_anthropic, work)


def test_a_create_refused_for_overload_is_sent_again_once_and_made_once(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_script(control=[{"route": "create", "status": 529, "times": 1, "retry_after": 0.01}])

    async def work(api: AnthropicBatchAPI) -> RemoteBatch:
        return await api.create(lines(), None, meta())

    assert run(fake_anthropic, work).total == 5
    stats = fake_anthropic.batch_stats()
    assert stats["batches_created"] == 1 and stats["routes"] == {"create": 2}


@pytest.mark.parametrize(("status", "code"), [(401, "auth"), (400, "bad_request")])
def test_a_refused_create_is_not_retried_and_never_shows_the_key(
    fake_anthropic: FakeAnthropic, status: int, code: str
) -> None:
    fake_anthropic.batch_script(control=[{"route": "create", "status": status, "times": 9}])

    async def work(api: AnthropicBatchAPI) -> RemoteBatch:
        return await api.create(lines(), None, meta())

    with pytest.raises(ProviderError) as caught:
        run(fake_anthropic, work)
    assert caught.value.code == code and KEY not in str(caught.value)
    assert fake_anthropic.batch_stats()["routes"] == {"create": 1}


def test_limits_and_line_sizes(fake_anthropic: FakeAnthropic) -> None:
    api = AnthropicBatchAPI(fake_anthropic.base_url, KEY, "claude-haiku-4-5")
    assert api.limits.max_requests == 100_000 and api.limits.max_bytes <= 256_000_000
    line = lines()[0]
    assert api.line_bytes(line) > len(json.dumps(AnthropicProvider(fake_anthropic.base_url, model="claude-haiku-4-5")
                                                  .payload(line.chat)))
    assert KEY not in repr(api)
    asyncio.run(api.aclose())


def test_find_pages_through_the_listing_newest_first(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> tuple[str, RemoteBatch | None]:
        mine = await api.create(lines(["I love it"]), None, meta(0))
        for chunk in range(1, 106):  # more than one page of 100 after it
            await api.create(lines(["I love it"]), None, meta(chunk))
        return mine.id, await api.find(meta(0))

    mine, found = run(fake_anthropic, work)
    assert found is not None and found.id == mine
    routes = fake_anthropic.batch_stats()["routes"]
    assert routes["list"] == 2 and routes["results"] == 106  # the first line of each, to read its tag


def test_a_batch_recorded_for_another_chunk_is_never_taken_for_this_one(fake_anthropic: FakeAnthropic) -> None:
    # chunk 0's batch is running and recorded; chunk 1 crashed before its create: no batch
    fake_anthropic.batch_script(in_progress_s=60)
    intent = str(time.time())

    async def work(api: AnthropicBatchAPI) -> tuple[RemoteBatch | None, RemoteBatch | None]:
        first = await api.create(lines(), None, meta(0, agentflow_lines="5", agentflow_intent_at=intent))
        second = meta(1, agentflow_lines="5", agentflow_intent_at=intent)
        unaware = await api.find(second)  # without the engine's records it would be taken
        return unaware, await api.find(second, {first.id}.__contains__)

    unaware, found = run(fake_anthropic, work)
    assert unaware is not None and found is None


def test_a_create_that_failed_after_sending_is_not_sent_again_blindly(fake_anthropic: FakeAnthropic) -> None:
    # a 500 may come after the batch was made: the engine looks for it before creating again
    fake_anthropic.batch_script(control=[{"route": "create", "status": 500, "times": 1}])

    async def work(api: AnthropicBatchAPI) -> RemoteBatch:
        return await api.create(lines(), None, meta())

    with pytest.raises(ProviderError) as caught:
        run(fake_anthropic, work)
    assert caught.value.retryable and caught.value.code == "provider_error"
    assert fake_anthropic.batch_stats()["routes"] == {"create": 1}


def test_the_fake_counts_a_second_batch_for_one_chunk(fake_anthropic: FakeAnthropic) -> None:
    async def work(api: AnthropicBatchAPI) -> None:
        await api.create(lines(), None, meta(0))
        await api.create(lines(), None, meta(1))
        await api.create(lines(), None, meta(0))  # what invariant 8 forbids

    run(fake_anthropic, work)
    stats = fake_anthropic.batch_stats()
    assert stats["batches_created"] == 3 and stats["duplicate_chunks"] == 1
