from __future__ import annotations

import pytest

from agentflow_jobs.errors import InvalidOutput
from agentflow_jobs.operations import get_operation
from agentflow_jobs.operations.summarize import DEFAULT_SUMMARY_INSTRUCTIONS
from tests.operations.helpers import reply, request

SUMMARIZE = get_operation("summarize")


def test_instructions_reach_the_prompt_and_default_when_absent() -> None:
    own = request("summarize", summary_instructions="Under 20 words.")
    chat = SUMMARIZE.build(own, {"content": "long text"})
    assert "Under 20 words." in chat.messages[0]["content"]
    assert chat.messages[1]["content"] == "long text"
    default = SUMMARIZE.build(request("summarize"), {"content": "long text"})
    assert DEFAULT_SUMMARY_INSTRUCTIONS in default.messages[0]["content"]
    assert default.response_format is not None
    assert default.response_format["json_schema"]["schema"]["required"] == ["summary"]


def test_a_json_reply_gives_the_summary() -> None:
    out = SUMMARIZE.parse(request("summarize"), {}, reply({"summary": " Short. "}))
    assert out == {"summary": "Short."}


def test_a_plain_text_reply_is_the_summary() -> None:
    out = SUMMARIZE.parse(request("summarize"), {}, reply("It went well."))
    assert out == {"summary": "It went well."}


def test_a_truncated_reply_is_invalid() -> None:
    with pytest.raises(InvalidOutput, match="cut off"):
        SUMMARIZE.parse(request("summarize"), {}, reply({"summary": "x"}, finish_reason="length"))


@pytest.mark.parametrize(
    ("text", "words"),
    [('{"summary": 3}', "no 'summary' string"), ('{"summary": "  "}', "empty"), ("", "empty")],
)
def test_bad_summaries_are_invalid(text: str, words: str) -> None:
    with pytest.raises(InvalidOutput, match=words):
        SUMMARIZE.parse(request("summarize"), {}, reply(text))


def test_raw_newlines_inside_the_json_string_are_read_as_they_are() -> None:
    # what Gemma 3 270M answered through llama-cpp-python's server (its JSON grammar
    # lets control characters into strings); strict JSON refused it twice and failed the row
    text = '{"summary": "No customer data was affected.\n\tOmar renews the certificate.\n" }'
    result = SUMMARIZE.parse(request("summarize"), {}, reply(text))
    assert result == {"summary": "No customer data was affected.\n\tOmar renews the certificate."}


@pytest.mark.parametrize(
    ("text", "limit"),
    [("x" * 240, 256), ("x" * 2_000, 564), ("x" * 40_000, 1_024), ("議" * 600, 514)],
)
def test_the_summarys_token_limit_follows_the_length_of_the_text(text: str, limit: int) -> None:
    # as many tokens as the text (4 bytes of UTF-8 each) and 64 for the JSON, within 256-1,024
    chat = SUMMARIZE.build(request("summarize"), {"content": text})
    assert chat.max_tokens == limit
