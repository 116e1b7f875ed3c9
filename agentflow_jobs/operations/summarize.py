"""``summarize``: ``{"summary": <text>}`` following ``summary_instructions``.

The model is asked for ``{"summary": ...}`` as structured output. A reply that is plain
text (a provider ignoring JSON mode) is taken as the summary itself. A reply cut off at
the token limit (``finish_reason == "length"``) is ``InvalidOutput``: a truncated summary
silently drops its end, so it is re-asked (shorter) and otherwise failed.

The limit follows the text: a summary is shorter than what it summarizes, so a reply
may take as many tokens as the text (one per 4 bytes of UTF-8, as ``plan`` counts them:
a CJK character is about a token) and 64 more for its JSON, at least
``SUMMARY_MIN_TOKENS`` and at most ``SUMMARY_MAX_TOKENS``. A model that runs on past any
summary (small local ones do) is cut off after 256 tokens of a short note, not 1,024,
which a paid API bills as output and a local server spends a minute on.
"""

from __future__ import annotations

from typing import Any

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.errors import InvalidOutput
from agentflow_jobs.operations.base import (
    BoundOperation,
    Operation,
    json_schema_format,
    load_json_object,
)
from agentflow_jobs.pricing.estimate import estimate_text_tokens
from agentflow_jobs.wire import CompletionRequest

__all__ = ["DEFAULT_SUMMARY_INSTRUCTIONS", "SummarizeOperation"]

DEFAULT_SUMMARY_INSTRUCTIONS = (
    "Summarize the text in a few sentences, keeping the key facts, decisions and numbers."
)
SUMMARY_MAX_TOKENS = 1024
SUMMARY_MIN_TOKENS = 256

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}


class SummarizeOperation(Operation):
    kind = "summarize"

    def prepare(self, request: CompletionRequest) -> BoundSummarize:
        return BoundSummarize(request)


class BoundSummarize(BoundOperation):
    schema = SUMMARY_SCHEMA
    response_format = json_schema_format("summary", SUMMARY_SCHEMA)
    max_tokens = SUMMARY_MAX_TOKENS
    retry_hint = 'Reply again with only {"summary": "..."}, short enough to finish.'

    def __init__(self, request: CompletionRequest) -> None:
        super().__init__(request)
        instructions = (request.summary_instructions or "").strip()
        self.system_prompt = (
            "You write faithful summaries of the text you are given.\n"
            f"{instructions or DEFAULT_SUMMARY_INSTRUCTIONS}\n"
            'Reply with only a JSON object: {"summary": "<the summary>"}.'
        )

    def user_message(self, item: dict[str, Any]) -> str:
        return self.content(item)

    def max_tokens_for(self, user: str) -> int:
        return min(SUMMARY_MAX_TOKENS, max(SUMMARY_MIN_TOKENS, estimate_text_tokens(user) + 64))

    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        if reply.finish_reason == "length":
            raise InvalidOutput("the summary was cut off at the token limit")
        text = reply.text.strip()
        if text.startswith(("{", "```")):
            data = load_json_object(reply)
            summary = data.get("summary")
            if not isinstance(summary, str):
                raise InvalidOutput("the reply has no 'summary' string")
        else:
            summary = text
        if not summary.strip():
            raise InvalidOutput("the summary is empty")
        return {"summary": summary.strip()}
