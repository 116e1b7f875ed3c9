"""BatchService over a real store, executor and the fake provider."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.engine.batches import BatchService, open_service
from agentflow_jobs.engine.requests import parse_request
from agentflow_jobs.errors import ConflictError, NotFoundError, UnprocessableEntityError
from agentflow_jobs.wire import ResultRow, Usage
from tests.fakes.handles import FakeProvider

CATS = ["positive", "negative"]


def service_for(fake: FakeProvider, store: str | Path) -> BatchService:
    config = {"type": "openai", "base_url": fake.base_url, "api_key": "k", "model": "m",
              "concurrency": 4, "max_attempts": 1}
    return open_service(config, store)


def run(fake: FakeProvider, store: str | Path, body: Callable[[BatchService], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        service = service_for(fake, store)
        service.start()
        try:
            return await body(service)
        finally:
            await service.aclose()

    return asyncio.run(main())


async def until_done(service: BatchService, batch_id: str) -> None:
    for _ in range(400):
        if service.retrieve("me", batch_id).is_terminal:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("batch did not finish")


def label(items: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_request({"operation": "classify", "categories": CATS, "items": items, **extra})


def test_workers_finish_a_batch_in_item_order(fake_provider: FakeProvider, store_location: str | Path) -> None:
    items = [{"content": "good"}, {"content": "bad"}] * 30

    async def body(service: BatchService) -> None:
        batch, created = service.submit("me", label(items))
        assert created and batch.status == "queued"
        await until_done(service, batch.id)
        page = service.output_page("me", batch.id, 0, 100)
        assert page.status == "completed" and page.total == 60
        assert [r["index"] for r in page.results] == list(range(60))
        assert [r["result"]["label"] for r in page.results[:2]] == ["positive", "negative"]

    run(fake_provider, store_location, body)
    assert fake_provider.count == 60


def test_restart_sends_only_unfinished_items(fake_provider: FakeProvider, store_location: str | Path) -> None:
    store = store_location
    items = [{"content": f"item {i} good"} for i in range(10)]
    service = service_for(fake_provider, store)  # never started: nothing runs
    batch, _ = service.submit("me", label(items))
    service.store.record(batch.id, [ResultRow(index=i, id=None, status="completed", result={"label": "positive", "confidence": 1.0}, error=None, usage=Usage().as_dict()) for i in (0, 3, 4, 9)])
    asyncio.run(service.aclose())

    async def body(restarted: BatchService) -> None:
        await until_done(restarted, batch.id)
        assert restarted.retrieve("me", batch.id).progress.completed == 10

    run(fake_provider, store, body)
    assert fake_provider.count == 6
    sent = [r["messages"][-1]["content"] for r in fake_provider.requests]
    assert not any(f"item {i} good" in text for text in sent for i in (0, 3, 4, 9))


def test_cancel_of_a_queued_batch_is_immediate(fake_provider: FakeProvider, store_location: str | Path) -> None:
    async def body(service: BatchService) -> None:
        await service.stop()  # no workers: the batch stays queued
        batch, _ = service.submit("me", label([{"content": "x"}]))
        assert (await service.cancel("me", batch.id)).status == "cancelled"
        assert service.output_page("me", batch.id, 0, 10).results == []

    run(fake_provider, store_location, body)
    assert fake_provider.count == 0


def test_owner_idempotency_and_errors(fake_provider: FakeProvider, store_location: str | Path) -> None:
    async def body(service: BatchService) -> None:
        request = label([{"content": "x"}])
        first, _ = service.submit("me", request, idempotency_key="k")
        again, created = service.submit("me", request, idempotency_key="k")
        assert again.id == first.id and not created
        with pytest.raises(ConflictError):
            service.submit("me", label([{"content": "y"}]), idempotency_key="k")
        with pytest.raises(NotFoundError):
            service.retrieve("you", first.id)
        with pytest.raises(UnprocessableEntityError) as caught:
            service.export("me", first.id, "xml")
        assert str(caught.value) == "format: expected one of json, jsonl, csv"
        await until_done(service, first.id)

    run(fake_provider, store_location, body)


def test_csv_flattens_result_fields(fake_provider: FakeProvider, store_location: str | Path) -> None:
    fake_provider.script(status=400, match="poison")
    items = [{"content": "good", "sku": "A"}, {"content": "poison", "sku": "B"}]
    fields = [{"name": "tags", "type": "list"}, {"name": "size", "type": "integer"}]

    async def body(service: BatchService) -> str:
        request = parse_request({"operation": "enrich", "fields": fields, "items": items, "id_field": "sku"})
        batch, _ = service.submit("me", request)
        await until_done(service, batch.id)
        return "".join(service.export("me", batch.id, "csv"))

    table = list(csv.reader(io.StringIO(run(fake_provider, store_location, body))))
    assert table[0] == ["index", "id", "status", "tags", "size", "error_code", "error_message"]
    assert table[1][:3] == ["0", "A", "completed"] and isinstance(json.loads(table[1][3]), list)
    assert table[2][:3] == ["1", "B", "failed"] and table[2][3:5] == ["", ""] and table[2][5]
