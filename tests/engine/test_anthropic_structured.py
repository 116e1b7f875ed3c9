"""Every operation on Anthropic with ``structured_output: native``: the operations'
schemas (numeric bounds, open objects) are sent in the subset Anthropic's JSON outputs
take, which the fake enforces as the API does, and the rows still complete and validate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentflow_jobs.engine import Executor
from agentflow_jobs.providers import build_provider
from agentflow_jobs.wire import CompletionRequest, CompletionResult
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.kinds import provider_block

OPERATIONS: list[dict[str, Any]] = [
    {"operation": "classify", "categories": ["positive", "negative"]},
    {"operation": "extract", "extraction_instructions": "Seats.",
     "output_schema": {"type": "object", "properties": {"seats": {"type": "integer", "minimum": 1}},
                       "required": ["seats"]}},
    {"operation": "extract", "extraction_instructions": "Extract 'contact'."},
    {"operation": "summarize"},
    {"operation": "enrich", "fields": [{"name": "segment", "type": "categorical", "valid_values": ["smb", "ent"]},
                                       {"name": "employees", "type": "integer"}], "include_context": True},
    {"operation": "run", "user_prompt_template": "Topic of: {content}",
     "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {
         "type": "object", "properties": {"topic": {"type": "string", "maxLength": 40}}, "required": ["topic"]}}}},
]


def complete(fake: FakeAnthropic, **fields: Any) -> CompletionResult:
    async def go() -> CompletionResult:
        executor = Executor(build_provider(provider_block(fake, structured_output="native")), concurrency=4)
        try:
            return await executor.complete(CompletionRequest(**fields))
        finally:
            await executor.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("fields", OPERATIONS, ids=lambda f: str(f["operation"]))
def test_each_operation_completes_with_anthropics_json_outputs(
    fake_anthropic: FakeAnthropic, fields: dict[str, Any]
) -> None:
    outcome = complete(fake_anthropic, items=[{"content": "I love it, 500 seats"}], **fields)
    assert [r["status"] for r in outcome.results] == ["completed"], outcome.results
    assert fake_anthropic.count == 1
    sent = fake_anthropic.requests[0]
    assert "tools" not in sent
    if fields["operation"] == "extract" and "output_schema" not in fields:
        assert "output_config" not in sent  # no schema: the prompt asks for JSON
    else:
        assert sent["output_config"]["format"]["schema"]["additionalProperties"] is False
