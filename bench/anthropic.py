"""What Anthropic's structured-output choices cost on our side: bodies, CPU, round trips.

For one item of each operation (label, extract with a schema, summarize, enrich):

- ``body_bytes``: the request body sent to OpenAI (``response_format: json_schema``), to
  Anthropic with the forced tool (``structured_output: tool``, the default) and with
  Anthropic's JSON outputs (``native``);
- ``build_us``: client CPU microseconds to build and encode one body, per variant;
- ``round_trip``: requests/s and mean latency of 400 label requests, 32 in flight,
  through each provider against its in-process fake (uvicorn on loopback; the fake's
  cost is in it, so this compares the clients, it is not a throughput figure).

Not measurable here, from Anthropic's documentation: a request with a tool gets a tool
use system prompt of 235-340 input tokens (by model, ``tool_choice: tool``), which the
native JSON outputs do not need; the native outputs exist only on newer models and
compile each new schema once (first-request latency, cached 24 h).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from agentflow_jobs.chat import ChatRequest
from agentflow_jobs.operations import get_operation
from agentflow_jobs.providers.anthropic import AnthropicProvider
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from agentflow_jobs.wire import CompletionRequest
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.handles import FakeProvider

ITEM = {"content": "Sarah Chen (VP Engineering, Acme Corp) wants 500 seats by Q3; support was terrible."}
REQUESTS = {
    "label": {"operation": "label", "categories": ["positive", "negative", "mixed"]},
    "extract": {"operation": "extract", "extraction_instructions": "Contact, company, seats.", "output_schema": {
        "type": "object", "properties": {"contact": {"type": "string"}, "company": {"type": "string"},
                                         "seats": {"type": "integer", "minimum": 1}},
        "required": ["contact", "company", "seats"]}},
    "summarize": {"operation": "summarize"},
    "enrich": {"operation": "enrich", "fields": [
        {"name": "segment", "type": "categorical", "valid_values": ["enterprise", "smb"]},
        {"name": "seats", "type": "integer"}, {"name": "tags", "type": "list"}]},
}
ROUND_TRIPS, IN_FLIGHT = 400, 32


def _chat(name: str) -> ChatRequest:
    fields = REQUESTS[name]
    request = CompletionRequest(items=[ITEM], **fields)
    return get_operation(str(fields["operation"])).prepare(request).build(ITEM, "m")


def _providers(openai_url: str, anthropic_url: str) -> dict[str, Any]:
    return {
        "openai": OpenAICompatProvider(openai_url, api_key="k", model="m"),
        "anthropic_tool": AnthropicProvider(anthropic_url, api_key="k", model="claude-haiku-4-5"),
        "anthropic_native": AnthropicProvider(anthropic_url, api_key="k", model="claude-haiku-4-5",
                                              structured_output="native"),
    }


def _build_us(provider: Any, chat: ChatRequest, rounds: int = 2000) -> float:
    started = time.process_time()
    for _ in range(rounds):
        provider.encode(provider.payload(chat))
    return round((time.process_time() - started) / rounds * 1e6, 2)


async def _round_trip(provider: Any, chat: ChatRequest) -> dict[str, float]:
    gate = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            await provider.chat(chat)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(ROUND_TRIPS)))
    elapsed = time.perf_counter() - started
    await provider.aclose()
    return {"rps": round(ROUND_TRIPS / elapsed, 1), "mean_ms": round(sum(latencies) / len(latencies) * 1e3, 2)}


def run() -> dict[str, Any]:
    openai, anthropic = FakeProvider(), FakeAnthropic()
    try:
        providers = _providers(openai.base_url, anthropic.base_url)
        figures: dict[str, Any] = {"body_bytes": {}, "build_us": {}}
        for name in REQUESTS:
            chat = _chat(name)
            figures["body_bytes"][name] = {k: len(p.encode(p.payload(chat))) for k, p in providers.items()}
            figures["build_us"][name] = {k: _build_us(p, chat) for k, p in providers.items()}
        label = _chat("label")
        figures["round_trip"] = {k: asyncio.run(_round_trip(p, label))
                                 for k, p in _providers(openai.base_url, anthropic.base_url).items()}
    finally:
        openai.close()
        anthropic.close()
    figures["tool_use_system_prompt_tokens_documented"] = "235-340 per request (tool_choice: tool)"
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
