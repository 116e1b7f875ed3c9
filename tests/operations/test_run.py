from __future__ import annotations

from typing import Any

import pytest

from agentflow_jobs.errors import InvalidOutput, InvalidRequest, OperationInputError
from agentflow_jobs.operations import get_operation
from agentflow_jobs.wire import CompletionRequest
from tests.operations.helpers import reply, request

RUN = get_operation("feedback_analysis")


def run(**extra: Any) -> CompletionRequest:
    fields = {"user_prompt_template": "Analyze {title}:\n\n{content}", **extra}
    return request("feedback_analysis", **fields)


def test_custom_names_are_run_and_the_template_is_rendered() -> None:
    req = run(system_prompt="You analyze feedback.")
    assert req.operation == "run" and req.operation_name == "feedback_analysis"
    chat = RUN.build(req, {"title": "T1", "content": "slow app", "other": 1})
    assert chat.messages == [
        {"role": "system", "content": "You analyze feedback."},
        {"role": "user", "content": "Analyze T1:\n\nslow app"},
    ]
    assert chat.response_format is None
    assert RUN.response_schema(req) is None


def test_text_replies_become_text() -> None:
    assert RUN.parse(run(), {}, reply("It is slow.")) == {"text": "It is slow."}


def test_json_object_mode_parses_and_mentions_json() -> None:
    req = run(response_format={"type": "json_object"})
    chat = RUN.build(req, {"title": "t", "content": "c"})
    assert chat.response_format == {"type": "json_object"}
    assert "JSON" in chat.messages[0]["content"]
    assert RUN.parse(req, {}, reply({"topic": "speed"})) == {"topic": "speed"}
    with pytest.raises(InvalidOutput, match="not an object"):
        RUN.parse(req, {}, reply('"speed"'))


def test_json_schema_mode_validates() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    req = run(response_format=fmt)
    assert RUN.build(req, {"title": "t", "content": "c"}).response_format == fmt
    assert RUN.parse(req, {}, reply({"n": 1})) == {"n": 1}
    with pytest.raises(InvalidOutput, match=r"\$\.n"):
        RUN.parse(req, {}, reply({"n": "one"}))


def test_missing_template_field_is_an_input_error() -> None:
    with pytest.raises(OperationInputError) as caught:
        RUN.build(run(), {"content": "c"})
    assert caught.value.code == "missing_field"
    assert caught.value.message == "item has no field 'title' used by user_prompt_template"


def test_empty_only_when_every_used_field_is_blank() -> None:
    with pytest.raises(OperationInputError) as caught:
        RUN.build(run(), {"title": " ", "content": ""})
    assert caught.value.code == "empty_content"
    assert RUN.build(run(), {"title": "t", "content": ""}).messages[-1]["content"]


def test_a_bad_template_or_format_fails_the_whole_request() -> None:
    with pytest.raises(InvalidRequest, match="attribute access"):
        RUN.build(run(user_prompt_template="{content.__class__}"), {"content": "x"})
    with pytest.raises(InvalidRequest, match="response_format"):
        RUN.build(run(response_format={"type": "yaml"}), {"title": "t", "content": "x"})


def test_a_truncated_or_empty_text_reply_is_invalid() -> None:
    with pytest.raises(InvalidOutput, match="cut off"):
        RUN.parse(run(), {}, reply("half a sen", finish_reason="length"))
    with pytest.raises(InvalidOutput, match="empty"):
        RUN.parse(run(), {}, reply("  "))


def test_a_json_schema_that_rules_out_an_object_fails_the_whole_request() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "names", "schema": {"type": "array"}}}
    with pytest.raises(InvalidRequest, match=r"must describe a JSON object \(its root type is `array`\)"):
        RUN.prepare(run(response_format=fmt))
