"""The executor binds an operation once per set of fields, not once per request.

The runner sends a job item by item, and binding can cost far more than an item (an
extract schema's validator is ~0.4 ms): requests with the same fields share one binding,
requests with other fields get their own, and the answers are the same either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentflow_jobs.engine import Executor
from agentflow_jobs.operations.extract import ExtractOperation
from agentflow_jobs.providers import build_provider
from agentflow_jobs.wire import CompletionRequest
from tests.fakes.handles import FakeProvider

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def request(item: str, schema: dict[str, Any] = SCHEMA) -> CompletionRequest:
    return CompletionRequest(operation="extract", items=[{"content": item}],
                             extraction_instructions="the name", output_schema=schema)


def test_requests_with_the_same_fields_are_bound_once(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound: list[CompletionRequest] = []
    original = ExtractOperation.prepare

    def counting(self: ExtractOperation, req: CompletionRequest) -> Any:
        bound.append(req)
        return original(self, req)

    monkeypatch.setattr(ExtractOperation, "prepare", counting)
    other = {**SCHEMA, "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}

    async def run() -> list[str]:
        provider = build_provider({"type": "openai", "base_url": fake_provider.base_url,
                                   "api_key": "k", "model": "m", "self_hosted": False})
        executor = Executor(provider, concurrency=4)
        try:
            requests = [request(f"item {i}") for i in range(5)] + [request("x", other)]
            return [(await executor.complete(r)).results[0]["status"] for r in requests]
        finally:
            await executor.aclose()

    statuses = asyncio.run(run())
    assert statuses == ["completed"] * 6
    assert len(bound) == 2  # one per distinct set of fields, not one per request
    assert len(fake_provider.requests) == 6  # every item was still sent
