"""Against llama-cpp-python's real OpenAI-compatible server (``python -m llama_cpp.server``)
with the packaged Gemma 3 270M model: every operation over a handful of items, every
example job applied through the CLI (``test_llama_examples.py``), the json_schema
fallback (that server answers it with HTTP 500), and a timeout.

One server for the session (``llama_server.py``); the requests it received are counted
from its access log (``"POST /v1/chat/completions HTTP/1.1" 500``). `make install`
provides the server and the model: missing, these tests fail, never skip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentflow_jobs.errors import ProviderError
from agentflow_jobs.providers.openai_compat import OpenAICompatProvider
from agentflow_jobs.sdk import AgentFlow
from tests.providers.conftest import request
from tests.providers.llama_server import LlamaServer

pytestmark = [pytest.mark.local_model]


@pytest.fixture
def client(llama_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentFlow]:
    config = tmp_path / "profiles.yaml"
    config.write_text(json.dumps({"profiles": {"llama": {"engine": "embedded", "store": str(tmp_path / "s.db"),
                                                          "provider": {"type": "openai",
                                                                       "base_url": llama_server.base_url}}}}))
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    with AgentFlow.from_profile("llama") as flow:
        yield flow


LABEL_ONLY = {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}},
              "required": ["label"], "additionalProperties": False}
REVIEWS = ["I love this kettle, it works great.", "Terrible. It broke after one day."]


def completed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert [r["status"] for r in rows] == ["completed"] * len(rows), rows
    return [r["result"] for r in rows]


def test_classify(client: AgentFlow) -> None:
    results = completed(client.completions.classify(items=REVIEWS, categories=["positive", "negative"]).results)
    assert all(r["label"] in ("positive", "negative") and 0 <= r["confidence"] <= 1 for r in results)


def test_extract_with_a_schema(client: AgentFlow) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "company": {"type": "string"}},
              "required": ["name", "company"], "additionalProperties": False}
    notes = ["Sarah Chen, VP Engineering at Acme Corp.", "Diego Alvarez works at Brightline Logistics."]
    results = completed(client.completions.extract(
        items=notes, extraction_instructions="Extract the person's name and company.", output_schema=schema,
    ).results)
    for result in results:
        jsonschema.validate(result, schema)


def test_summarize(client: AgentFlow) -> None:
    notes = ["We agreed to ship on Friday. Ana owns the release notes.", "The budget was approved."]
    results = completed(client.completions.summarize(items=notes).results)
    assert all(isinstance(r["summary"], str) and r["summary"].strip() for r in results)


def test_enrich(client: AgentFlow) -> None:
    fields = [{"name": "segment", "type": "categorical", "valid_values": ["enterprise", "smb"]},
              {"name": "employees", "type": "integer"}]
    results = completed(client.completions.enrich(
        items=["Acme Corp: 5,000 employees, sells to banks.", "Finch: a startup of 12 people."], fields=fields,
    ).results)
    assert all(r["segment"] in ("enterprise", "smb") and isinstance(r["employees"], int) for r in results)


def test_run_in_json_mode(client: AgentFlow) -> None:
    results = completed(client.completions.run(
        items=["The app crashes when I upload a photo."], operation="topic",
        system_prompt="Reply with a JSON object.",
        user_prompt_template='Return {{"topic": ...}} for this feedback: {content}',
        response_format={"type": "json_object"},
    ).results)
    assert all(isinstance(r, dict) and r for r in results)


def _chat(server: LlamaServer, *requests: Any, **options: Any) -> list[Any]:
    async def run() -> list[Any]:
        provider = OpenAICompatProvider(server.base_url, self_hosted=True, **options)
        try:
            return [await provider.chat(r) for r in requests]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def test_json_schema_falls_back_on_its_500_and_remembers(llama_server: LlamaServer) -> None:
    before = len(llama_server.statuses())
    fmt = {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": LABEL_ONLY}}
    asked = [request(text, response_format=fmt, max_tokens=40) for text in REVIEWS]
    replies = _chat(llama_server, *asked)
    assert llama_server.statuses()[before:] == [500, 200, 200]  # refused once, then remembered
    for reply in replies:  # the schema came along with json_object: the server's grammar kept to it
        jsonschema.validate(json.loads(reply.text), LABEL_ONLY)


def test_a_timeout_is_sent_again_once_not_three_times(llama_server: LlamaServer) -> None:
    # last in the file: the server keeps generating what timed out for a few seconds
    long_text = {"type": "object", "properties": {"story": {"type": "string", "minLength": 3000}},
                 "required": ["story"]}
    slow = request("Tell a story.", response_format={"type": "json_object", "schema": long_text},
                   max_tokens=200)
    with pytest.raises(ProviderError) as caught:
        _chat(llama_server, slow, timeout=0.5, max_attempts=3)
    assert caught.value.code == "timeout"
    assert "gave up after 2 attempts" in str(caught.value) and caught.value.attempts == 2
