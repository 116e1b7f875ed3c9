"""The offline model's reply schema: a summary gets room and ends at a whole sentence."""

from __future__ import annotations

import json

from agentflow_jobs.providers.local_prompts import ReplyPlan
from agentflow_jobs.providers.local_schema import (
    PROSE_LIMIT,
    bounded_schema,
    whole_sentences,
    with_room,
)
from agentflow_jobs.providers.schema_grammar import one_type_each

SUMMARY = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}


def test_a_summary_gets_room_for_a_few_sentences() -> None:
    roomy = bounded_schema(with_room(SUMMARY, "summary"))
    assert roomy["properties"]["summary"]["maxLength"] == PROSE_LIMIT
    assert bounded_schema(SUMMARY)["properties"]["summary"]["maxLength"] < PROSE_LIMIT


def test_a_summary_that_ran_into_its_bound_ends_at_its_last_whole_sentence() -> None:
    plan = ReplyPlan(schema=SUMMARY, prose_fields=("summary",))
    cut = ("Ship the three-step flow. Drop the video tour. " * 20)[: PROSE_LIMIT - 5] + " and"
    text, whole = whole_sentences(json.dumps({"summary": cut}), plan)
    assert whole and json.loads(text)["summary"].endswith("video tour.")


def test_one_without_a_sentence_end_is_reported_cut() -> None:
    plan = ReplyPlan(schema=SUMMARY, prose_fields=("summary",))
    _, whole = whole_sentences(json.dumps({"summary": "word " * PROSE_LIMIT}), plan)
    assert not whole


def test_a_short_summary_is_left_alone() -> None:
    plan = ReplyPlan(schema=SUMMARY, prose_fields=("summary",))
    reply = json.dumps({"summary": "Two candidates moved to final rounds, and"})
    assert whole_sentences(reply, plan) == (reply, True)


NULLABLE = {
    "type": "object",
    "properties": {
        "name": {"type": ["string", "null"], "maxLength": 5, "description": "who"},
        "seats": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": ["string", "null"]}},
    },
    "required": ["name", "seats", "tags"],
}


def _grammar(schema: dict[str, object]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema)))


def test_a_list_of_types_keeps_its_bound_in_the_grammar() -> None:
    # llama.cpp's builder drops maxLength on a list of types: an unbounded string, which
    # a greedy model filled until its token limit (the lead-contacts example, 392 s an item)
    assert 'name ::= string | null' in _grammar(NULLABLE)
    bounded = _grammar(bounded_schema(NULLABLE))
    name_rule = next(line for line in bounded.splitlines() if line.startswith("name-0 ::="))
    assert "char*" not in name_rule and name_rule.count("char") == 5


def test_a_string_defined_under_defs_is_bounded_too() -> None:
    # a $ref'd definition is a schema like any other: unbounded, a greedy reply runs on
    schema = {"type": "object", "properties": {"who": {"$ref": "#/$defs/name"}}, "required": ["who"],
              "$defs": {"name": {"type": ["string", "null"]}}}
    assert "char*" in _grammar(schema)
    assert "char*" not in _grammar(bounded_schema(schema))


def test_one_type_each_accepts_exactly_the_same_values() -> None:
    import jsonschema

    split = one_type_each(NULLABLE)
    assert split["properties"]["name"] == {"description": "who", "anyOf": [
        {"maxLength": 5, "type": "string"}, {"maxLength": 5, "type": "null"}]}
    for value, valid in (({"name": "Ana", "seats": 3, "tags": ["a", None]}, True),
                         ({"name": None, "seats": None, "tags": []}, True),
                         ({"name": "Anabel", "seats": 3, "tags": []}, False),
                         ({"name": "Ana", "seats": 1.5, "tags": []}, False),
                         ({"name": "Ana", "seats": 1, "tags": [3]}, False)):
        for schema in (NULLABLE, split):
            assert jsonschema.Draft202012Validator(schema).is_valid(value) is valid, (value, schema)
