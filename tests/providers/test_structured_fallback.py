"""The json_schema fallback decided by what the server says, not only its status: the
HTTP 500 of llama-cpp-python's server naming ``response_format`` falls back to
``json_object`` carrying the schema, and a server that refuses that schema key gets plain
``json_object`` with the schema in words."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import structlog

from agentflow_jobs.chat import ChatReply
from tests.fakes.answers import LLAMA_CPP_JSON_SCHEMA
from tests.fakes.handles import FakeProvider
from tests.providers.conftest import LABEL_FORMAT, make_provider, request

SCHEMA = LABEL_FORMAT["json_schema"]["schema"]  # type: ignore[index]


def chat(base_url: str, *texts: str, **options: Any) -> list[ChatReply]:
    async def run() -> list[ChatReply]:
        provider = make_provider(base_url, **options)
        try:
            return [await provider.chat(request(t, response_format=LABEL_FORMAT)) for t in texts]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def formats(fake: FakeProvider) -> list[tuple[str, bool]]:
    return [(r["response_format"]["type"], "schema" in r["response_format"]) for r in fake.requests]


def test_llama_cpp_servers_500_falls_back_to_json_object_with_the_schema(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema_500")
    with structlog.testing.capture_logs() as logs:
        first, second = chat(fake_provider.base_url, "This is awful", "I love it", max_attempts=3)
    # said once, when it is learned: the replies may differ from then on
    assert [(e["event"], e["feature"]) for e in logs if e["log_level"] == "warning"] == [
        ("the model's server refused a request feature: sent without it from now on", "json_schema")]
    assert formats(fake_provider) == [("json_schema", False), ("json_object", True), ("json_object", True)]
    assert fake_provider.requests[1]["response_format"]["schema"] == SCHEMA
    assert fake_provider.stats()["by_status"] == {"500": 1, "200": 2}  # not retried as a server error
    for reply in (first, second):
        jsonschema.validate(json.loads(reply.text), SCHEMA)
    assert [json.loads(r.text)["label"] for r in (first, second)] == ["negative", "positive"]


def test_the_llama_cpp_message_in_a_400_or_422_falls_back_too(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=422, body=LLAMA_CPP_JSON_SCHEMA, times=1)
    [reply] = chat(fake_provider.base_url, "great")
    assert formats(fake_provider) == [("json_schema", False), ("json_object", True)]
    assert json.loads(reply.text)["label"] == "positive"


def test_a_500_that_names_no_feature_is_a_server_error_retried(fake_provider: FakeProvider) -> None:
    fake_provider.script(status=500, times=2)
    [reply] = chat(fake_provider.base_url, "great", max_attempts=3)
    assert formats(fake_provider) == [("json_schema", False)] * 3
    assert json.loads(reply.text)["label"] == "positive"


def test_a_server_refusing_the_schema_key_gets_plain_json_object(fake_provider: FakeProvider) -> None:
    fake_provider.script(fault="reject_json_schema")
    refusal = json.dumps({"detail": [{"type": "extra_forbidden", "loc": ["body", "response_format", "schema"],
                                      "msg": "Extra inputs are not permitted"}]})
    # only the fallback request spells the schema out in a message
    fake_provider.script(status=422, body=refusal, match="follows this JSON Schema", times=1)
    first, second = chat(fake_provider.base_url, "awful", "great", max_attempts=1)
    assert formats(fake_provider) == [("json_schema", False), ("json_object", True), ("json_object", False),
                                      ("json_object", False)]
    note = fake_provider.requests[-1]["messages"][0]["content"]
    assert "follows this JSON Schema" in note and '"enum": ["positive", "negative"]' in note
    assert [json.loads(r.text)["label"] for r in (first, second)] == ["negative", "positive"]


def test_the_fallback_schema_has_one_type_per_branch(fake_provider: FakeProvider) -> None:
    # llama.cpp's grammar builder drops a type list's maxLength: send it as anyOf branches
    schema = {"type": "object", "properties": {"who": {"type": ["string", "null"], "maxLength": 40}},
              "required": ["who"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "contact", "schema": schema}}
    fake_provider.script(fault="reject_json_schema_500")

    async def run() -> None:
        provider = make_provider(fake_provider.base_url, max_attempts=3)
        try:
            await provider.chat(request("Ana from Acme", response_format=fmt))
        finally:
            await provider.aclose()

    asyncio.run(run())
    sent = fake_provider.requests[-1]["response_format"]
    assert sent["type"] == "json_object"
    assert sent["schema"]["properties"]["who"] == {"anyOf": [{"maxLength": 40, "type": "string"},
                                                             {"maxLength": 40, "type": "null"}]}
