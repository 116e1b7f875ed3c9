"""The chat types shared by operations and providers: what is sent, what comes back.

Operations (pure) build a ``ChatRequest`` and judge a ``ChatReply``; a provider only
sends one and returns the other. These types sit at the bottom, beside ``wire.py``, so
operations never import a provider to speak to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentflow_jobs.wire import Usage

__all__ = ["ChatReply", "ChatRequest", "TaskHint", "TokenLogprob"]


@dataclass(frozen=True)
class TaskHint:
    """What the operation is, for providers that build their own prompts (the local model).

    ``kind`` is the operation kind; ``params`` its fields (categories, fields, ...);
    ``item`` the item being processed; ``choices`` the allowed labels, when there are any.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to send."""

    messages: list[dict[str, str]]
    model: str | None = None
    # OpenAI-style: {"type": "json_schema", "json_schema": {...}} | {"type": "json_object"} | None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = 0.0
    logprobs: bool = False
    top_logprobs: int | None = None
    hint: TaskHint | None = None
    # attempts the provider may make for this request (its own policy when None)
    max_attempts: int | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatReply:
    """What came back: text, usage, why it stopped, and log-probabilities if any."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    model: str | None = None
    logprobs: list[TokenLogprob] | None = None
    # Set by a provider that scored the allowed choices itself (label/categorical).
    choice_probs: dict[str, float] | None = None
    # The model declined to answer: its refusal text (OpenAI ``message.refusal``), or a
    # note that the provider's content filter stopped the reply.
    refusal: str | None = None
