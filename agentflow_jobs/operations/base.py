"""What every operation shares: the per-item errors, reading content, judging JSON replies.

An ``Operation`` is stateless. ``prepare(request)`` binds it to one CompletionRequest and
does the per-request work once (prompts, JSON schema, validators); the returned
``BoundOperation`` then builds one ``ChatRequest`` per item and parses one reply per
item. The executor prepares once per request, so per-item work stays small; the
``build``/``parse`` shortcuts on ``Operation`` are for callers holding a single item.

Nothing here does I/O. Three exceptions (all in ``errors``); the first two never leave
the engine:

- ``OperationInputError(code, message)``: the item itself cannot be sent
  (``missing_field``, ``empty_content``, ``item_too_large``); the row fails at once.
- ``InvalidOutput(message)``: the model's reply broke the contract; the executor re-asks
  once with ``retry_request`` and then fails the row with ``invalid_output``.
- ``InvalidRequest(message)``: the request as a whole is unusable (a broken template or
  schema); raised by ``prepare``, never per item. It is a public 422 error
  (``UnprocessableEntityError``), since it reaches SDK and HTTP users.
"""

from __future__ import annotations

import json
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from agentflow_jobs.chat import ChatReply, ChatRequest, TaskHint
from agentflow_jobs.errors import InvalidOutput, InvalidRequest, OperationInputError
from agentflow_jobs.wire import CompletionRequest

__all__ = [
    "MAX_ITEM_CHARS",
    "REPEATED_REPLY_CHARS",
    "BoundOperation",
    "Choices",
    "Operation",
    "fold",
    "json_schema_format",
    "load_json_object",
    "look_alike",
    "repeated_reply",
    "value_text",
]

# Longest user message (content or rendered template) sent for one item, in characters.
# Roughly 25k tokens: beyond this an item is almost always a mistake (a whole file in a
# cell) and would only burn money or overflow the model's context.
MAX_ITEM_CHARS = 100_000

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


def value_text(value: Any) -> str:
    """How an item value reads in a prompt: strings as is, structures as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def fold(text: str) -> str:
    """``text`` as matched against declared choices: case, whitespace runs and Unicode
    normalization ignored (``café`` typed precomposed or with a combining accent, as a
    model may write it either way, is one choice)."""
    # NFKC(casefold(NFKC(x))): Unicode's caseless match, the fold alone is not closed
    folded = unicodedata.normalize("NFKC", " ".join(text.split())).casefold()
    return unicodedata.normalize("NFKC", folded)


def look_alike(what: str, earlier: str, value: str) -> str:
    """The complaint about two declared values the lenient match cannot tell apart."""
    return f"{what} `{earlier}` and `{value}` differ only in case, spacing or Unicode form"


class Choices:
    """Declared values a reply must name (categories, an enrich field's valid_values),
    matched by exact spelling first, then by ``fold``. Two values that fold alike could
    not be told apart — a reply for one would come back as the other — so such a set is
    an InvalidRequest rather than a guess."""

    def __init__(self, values: Iterable[str], *, what: str) -> None:
        self.values = tuple(dict.fromkeys(values))
        self._exact = frozenset(self.values)
        self._folded: dict[str, str] = {}
        for value in self.values:
            earlier = self._folded.setdefault(fold(value), value)
            if earlier != value:
                raise InvalidRequest(look_alike(what, earlier, value))

    def match(self, raw: str) -> str | None:
        """The declared value ``raw`` names, or None."""
        if raw in self._exact:
            return raw
        return self._folded.get(fold(raw))


def json_schema_format(name: str, schema: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """An OpenAI-style ``response_format`` asking for JSON that follows ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "strict": strict, "schema": schema},
    }


def load_json_object(reply: ChatReply) -> dict[str, Any]:
    """The reply's JSON object, tolerating code fences and chatter around it."""
    text = reply.text.strip()
    value = _loads_lenient(text)
    if value is None:
        if reply.finish_reason == "length":
            raise InvalidOutput("the reply was cut off at the token limit before the JSON ended")
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InvalidOutput(f"the reply is not valid JSON: {shown!r}")
    if not isinstance(value, dict):
        raise InvalidOutput(f"the reply is JSON but not an object (got {type(value).__name__})")
    return value


def _loads_lenient(text: str) -> Any:
    """Parse ``text`` as JSON; failing that, a fenced block or the outermost ``{...}``.

    Raw newlines and tabs inside strings are read as they are (``strict=False``): small
    models write them, and llama-cpp-python's JSON grammar lets them through.
    """
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        pass
    candidates = []
    fenced = _FENCE.match(text)
    if fenced:
        candidates.append(fenced.group(1))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)
        except (ValueError, RecursionError):
            continue
    return None


# the most of a bad reply the re-ask repeats to the model: enough to show what went wrong
REPEATED_REPLY_CHARS = 1_000


def repeated_reply(text: str) -> str:
    """A bad reply as the re-ask repeats it: its start, when it is long.

    A reply that ran to the token limit (a small model looping inside a JSON object)
    can fill most of a self-hosted server's context; repeated whole, the re-ask would
    not fit (llama-cpp-python's server at its default 2,048 tokens refused every one).
    """
    if len(text) <= REPEATED_REPLY_CHARS:
        return text
    return f"{text[:REPEATED_REPLY_CHARS]}… ({len(text) - REPEATED_REPLY_CHARS} more characters)"


class BoundOperation(ABC):
    """An operation bound to one request: builds and judges item after item."""

    system_prompt: str | None = None
    response_format: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    choices: tuple[str, ...] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    # what to tell the model when it must answer again
    retry_hint = "Reply again with only the corrected JSON object."

    def __init__(self, request: CompletionRequest) -> None:
        self.request = request
        self.hint_params = request.model_dump(
            exclude={"items", "metadata", "max_attempts", "id_field", "model", "operation"},
            exclude_none=True,
            exclude_defaults=True,
        )

    @abstractmethod
    def user_message(self, item: dict[str, Any]) -> str:
        """The item as the model reads it; raises OperationInputError."""

    @abstractmethod
    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        """The row's result from a reply; raises InvalidOutput."""

    def checked_message(self, item: dict[str, Any]) -> str:
        """The user message for ``item``; OperationInputError when the item cannot be sent
        (a missing or empty field, too long). The runner asks this before it queues an
        item, so what is refused unsent is decided in one place."""
        user = self.user_message(item)
        if len(user) > MAX_ITEM_CHARS:
            raise OperationInputError(
                "item_too_large",
                f"item is {len(user):,} characters; the limit is {MAX_ITEM_CHARS:,}",
            )
        return user

    def build(self, item: dict[str, Any], model: str | None = None) -> ChatRequest:
        """The chat request for one item."""
        user = self.checked_message(item)
        messages = [{"role": "user", "content": user}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        hint = TaskHint(self.request.operation, self.hint_params, item, self.choices)
        return ChatRequest(
            messages=messages,
            model=model,
            response_format=self.response_format,
            max_tokens=self.max_tokens_for(user),
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
            hint=hint,
            max_attempts=self.request.max_attempts,
        )

    def max_tokens_for(self, user: str) -> int | None:
        """The reply's token limit for an item whose user message is ``user``."""
        return self.max_tokens

    def content(self, item: dict[str, Any]) -> str:
        """The item's content field as text; missing or blank content is an input error."""
        name = self.request.content_field
        if name not in item:
            raise OperationInputError(
                "missing_field", f"item has no field {name!r} (the content field)"
            )
        text = value_text(item[name])
        if not text.strip():
            raise OperationInputError("empty_content", f"item field {name!r} is empty")
        return text

    def retry_messages(
        self, chat: ChatRequest, reply: ChatReply, problem: InvalidOutput
    ) -> list[dict[str, str]]:
        """The conversation for the one re-ask: the bad reply and what was wrong with it."""
        complaint = f"Your reply was invalid: {problem.message}. {self.retry_hint}"
        return [
            *chat.messages,
            {"role": "assistant", "content": repeated_reply(reply.text)},
            {"role": "user", "content": complaint},
        ]

    def retry_request(
        self, chat: ChatRequest, reply: ChatReply, problem: InvalidOutput
    ) -> ChatRequest:
        """``chat`` again, with the bad reply and the complaint appended."""
        return replace(chat, messages=self.retry_messages(chat, reply, problem))


class Operation(ABC):
    """One kind of work (label, extract, ...): stateless, pure."""

    kind: ClassVar[str]

    @abstractmethod
    def prepare(self, request: CompletionRequest) -> BoundOperation:
        """Bind to ``request``, doing per-request work once; raises InvalidRequest."""

    def build(self, request: CompletionRequest, item: dict[str, Any]) -> ChatRequest:
        """The chat request for one item (model left to the caller/provider)."""
        return self.prepare(request).build(item, request.model)

    def parse(
        self, request: CompletionRequest, item: dict[str, Any], reply: ChatReply
    ) -> dict[str, Any]:
        """The result for one item's reply; raises InvalidOutput."""
        return self.prepare(request).parse(item, reply)

    def response_schema(self, request: CompletionRequest) -> dict[str, Any] | None:
        """The JSON schema replies must follow, or None for free text."""
        return self.prepare(request).schema

    def retry_messages(
        self,
        request: CompletionRequest,
        chat: ChatRequest,
        reply: ChatReply,
        problem: InvalidOutput,
    ) -> list[dict[str, str]]:
        """The messages of the one re-ask after ``problem``."""
        return self.prepare(request).retry_messages(chat, reply, problem)
