"""When the executor loads a model's price: once the window is full, never in front of
the first requests (the first lookup loads the whole price table, ~50 ms)."""

from __future__ import annotations

import asyncio

from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.engine import Executor
from agentflow_jobs.pricing import Price, Rates
from agentflow_jobs.wire import CompletionRequest, CompletionResult, Usage

CATS = ["positive", "negative"]
RATES = Rates(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.5)
PRICE = Price(sync=RATES, batch=RATES, source="test", batch_basis="test")


class Gated:
    """A provider peer whose answers wait until the test opens the gate."""

    name: str = "gated"
    default_model: str | None = "gated-1"

    def __init__(self) -> None:
        self.started = 0
        self.gate = asyncio.Event()

    async def chat(self, request: ChatRequest) -> ChatReply:
        self.started += 1
        await self.gate.wait()
        return ChatReply('{"label": "positive", "confidence": 1}', Usage(prompt_tokens=1000))

    async def aclose(self) -> None:
        pass


def _request(items: int) -> CompletionRequest:
    return CompletionRequest(
        operation="classify", categories=CATS, items=[{"content": "good"}] * items
    )


async def _run(requests: int, items: int, concurrency: int) -> tuple[list[int], list[CompletionResult]]:
    """``requests`` requests of ``items`` items at once; the started count at each lookup."""
    provider = Gated()
    looked_up: list[int] = []

    def price(model: str | None) -> Price:
        looked_up.append(provider.started)
        return PRICE

    executor = Executor(provider, concurrency=concurrency, price=price)
    tasks = [asyncio.create_task(executor.complete(_request(items))) for _ in range(requests)]
    while provider.started < min(requests * items, concurrency):
        await asyncio.sleep(0)
    for _ in range(3):  # turns of the loop for a lookup scheduled by the last start
        await asyncio.sleep(0)
    before_answers = list(looked_up)
    provider.gate.set()
    results = await asyncio.gather(*tasks)
    return before_answers, results


def test_one_item_requests_look_the_price_up_once_the_window_is_full() -> None:
    """The runner's sync mode: one request per item, ``concurrency`` of them in flight."""
    before_answers, results = asyncio.run(_run(requests=8, items=1, concurrency=8))
    assert before_answers == [8]  # after the eighth start, before any answer
    costs = {r.results[0]["usage"]["cost_usd"] for r in results}
    assert costs == {0.001}  # 1,000 prompt tokens at $1 per million, on every row


def test_a_request_of_several_items_looks_it_up_once_its_workers_started() -> None:
    before_answers, results = asyncio.run(_run(requests=1, items=20, concurrency=4))
    assert before_answers == [4]
    assert [row["usage"]["cost_usd"] for row in results[0].results] == [0.001] * 20


def test_fewer_requests_than_the_window_look_it_up_at_their_first_answer() -> None:
    before_answers, results = asyncio.run(_run(requests=3, items=1, concurrency=8))
    assert before_answers == []  # the window never filled: nothing loaded in front of them
    assert {r.results[0]["usage"]["cost_usd"] for r in results} == {0.001}
