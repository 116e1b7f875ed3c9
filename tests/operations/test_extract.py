from __future__ import annotations

import pytest

from agentflow_jobs.errors import InvalidOutput, InvalidRequest
from agentflow_jobs.operations import get_operation
from tests.operations.helpers import reply, request

EXTRACT = get_operation("extract")
SCHEMA = {
    "type": "object",
    "properties": {
        "contact": {"type": "string"},
        "seats": {"type": "integer", "minimum": 1},
        "people": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    },
    "required": ["contact", "seats"],
}


def test_without_a_schema_it_asks_for_any_json_object() -> None:
    req = request("extract", extraction_instructions="Extract contact and seats.")
    chat = EXTRACT.build(req, {"content": "Sarah wants 500 seats"})
    assert chat.response_format == {"type": "json_object"}
    assert "Extract contact and seats." in chat.messages[0]["content"]
    assert "JSON" in chat.messages[0]["content"]
    assert chat.messages[1]["content"] == "Sarah wants 500 seats"
    assert EXTRACT.parse(req, {}, reply({"contact": "Sarah", "seats": 500})) == {
        "contact": "Sarah",
        "seats": 500,
    }


def test_any_object_is_fine_without_a_schema_but_not_an_array() -> None:
    req = request("extract", extraction_instructions="x")
    with pytest.raises(InvalidOutput, match="not an object"):
        EXTRACT.parse(req, {}, reply([{"a": 1}]))


def test_with_a_schema_it_is_sent_and_enforced() -> None:
    req = request("extract", extraction_instructions="x", output_schema=SCHEMA)
    chat = EXTRACT.build(req, {"content": "text"})
    assert chat.response_format is not None
    assert chat.response_format["type"] == "json_schema"
    assert chat.response_format["json_schema"]["schema"] == SCHEMA
    assert EXTRACT.response_schema(req) == SCHEMA
    assert EXTRACT.parse(req, {}, reply({"contact": "S", "seats": 2})) == {
        "contact": "S",
        "seats": 2,
    }


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"contact": "S"}, "'seats' is a required property"),
        ({"contact": "S", "seats": "many"}, "$.seats"),
        ({"contact": "S", "seats": 0}, "$.seats"),
        ({"contact": "S", "seats": 3, "people": [{"role": "VP"}]}, "$.people[0]"),
    ],
)
def test_schema_violations_name_the_path(data: dict[str, object], words: str) -> None:
    req = request("extract", output_schema=SCHEMA)
    with pytest.raises(InvalidOutput) as caught:
        EXTRACT.parse(req, {}, reply(data))
    assert words in caught.value.message


def test_a_broken_schema_fails_the_whole_request() -> None:
    req = request("extract", output_schema={"type": "objekt"})
    with pytest.raises(InvalidRequest, match="output_schema is not a valid JSON Schema"):
        EXTRACT.build(req, {"content": "x"})


@pytest.mark.parametrize(
    ("schema", "shown"),
    [
        ({"type": "array", "items": {"type": "string"}}, "`array`"),
        ({"type": "string"}, "`string`"),
        ({"type": ["array", "null"]}, "`array` or `null`"),
    ],
)
def test_a_schema_whose_root_cannot_be_an_object_fails_the_whole_request(
    schema: dict[str, object], shown: str
) -> None:
    req = request("extract", output_schema=schema)
    with pytest.raises(InvalidRequest) as caught:
        EXTRACT.build(req, {"content": "x"})
    assert caught.value.message == (
        f"output_schema must describe a JSON object (its root type is {shown})"
    )


@pytest.mark.parametrize(
    "schema",
    [{"type": ["object", "null"]}, {"properties": {"a": {"type": "string"}}}],
)
def test_a_schema_that_allows_an_object_at_the_root_is_accepted(
    schema: dict[str, object],
) -> None:
    req = request("extract", output_schema=schema)
    assert EXTRACT.parse(req, {}, reply({"a": "x"})) == {"a": "x"}


def test_malformed_reply_is_invalid() -> None:
    req = request("extract", extraction_instructions="x")
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        EXTRACT.parse(req, {}, reply("Sure! Here you go: contact=Sarah"))


def test_a_reply_nested_past_the_parsers_depth_is_invalid_output_not_a_crash() -> None:
    req = request("extract", extraction_instructions="names")
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        EXTRACT.parse(req, {"content": "x"}, reply('{"a": ' + "[" * 100_000 + "}"))


def test_a_reply_cut_at_the_token_limit_is_repeated_only_in_part_by_the_re_ask() -> None:
    # a small model looping inside a JSON object until the limit: the whole reply,
    # repeated, overflowed llama-cpp-python's server's 2,048-token context
    from agentflow_jobs.chat import ChatReply
    from agentflow_jobs.wire import Usage

    req = request("extract", extraction_instructions="Extract contact and seats.")
    chat = EXTRACT.build(req, {"content": "Sarah wants 500 seats"})
    looping = ChatReply(text='{"contact": "Sarah' + " \t" * 3_000, usage=Usage(), finish_reason="length")
    with pytest.raises(InvalidOutput) as caught:
        EXTRACT.parse(req, {}, looping)
    messages = EXTRACT.retry_messages(req, chat, looping, caught.value)
    assert messages[:2] == chat.messages
    repeated = messages[2]["content"]
    assert repeated.startswith('{"contact": "Sarah') and len(repeated) < 1_100
    assert repeated.endswith(f"({len(looping.text) - 1_000} more characters)")
    assert "cut off at the token limit" in messages[3]["content"]
    # a short bad reply is repeated as it was
    short = reply([{"contact": "Sarah"}])
    assert EXTRACT.retry_messages(req, chat, short, InvalidOutput("x"))[2]["content"] == short.text
