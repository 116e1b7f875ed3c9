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
