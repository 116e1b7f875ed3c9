"""``label`` (the SDK's ``classify``): one of the categories, with a confidence.

The result is ``{"label": <one of categories>, "confidence": <0..1>}``. The label is
matched exactly first, then ignoring case and surrounding/inner whitespace runs, and
always returned in the declared spelling; any other answer is ``InvalidOutput``.
Categories that differ only in case, spacing or Unicode form (``Yes``/``yes``) are an
``InvalidRequest``: the lenient match could not tell them apart.

Confidence, best source first:

1. token log-probabilities of the reply (the JSON ``label`` value, or a bare category
   name): for each token of the label value, the
   probability mass of the alternatives consistent with the chosen label, normalised over
   the alternatives consistent with any category still possible at that point (so the
   first token usually decides; a token shared by two categories defers to the next);
   when a token comes without alternatives its own probability is used;
2. ``reply.choice_probs``, when the provider scored the categories itself;
3. the model's own ``confidence`` from the JSON reply: a number or a numeric string
   (``0.8``, ``"0.8"``, ``"80%"``); a number in [2, 100] is read as a percentage
   (``80`` → 0.8), anything else is clamped to [0, 1] (``1.5`` → 1);
4. ``DEFAULT_CONFIDENCE``, when the reply gives no confidence or not a number.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from agentflow_jobs.chat import ChatReply, TokenLogprob
from agentflow_jobs.errors import InvalidOutput
from agentflow_jobs.operations.base import (
    BoundOperation,
    Choices,
    Operation,
    fold,
    json_schema_format,
    load_json_object,
)
from agentflow_jobs.wire import CompletionRequest

__all__ = ["DEFAULT_CONFIDENCE", "LabelOperation", "label_confidence", "reported_confidence"]

# Used only when the reply carries no probabilities and no estimate: "no idea".
DEFAULT_CONFIDENCE = 0.5
TOP_LOGPROBS = 5

_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')
# what may end a bare category name (the characters ``_bare`` strips), and a JSON string
_BARE_ENDS = " \t\r\n\"'`."
_JSON_ENDS = '"'


class LabelOperation(Operation):
    kind = "label"

    def prepare(self, request: CompletionRequest) -> BoundLabel:
        return BoundLabel(request)


class BoundLabel(BoundOperation):
    logprobs = True
    top_logprobs = TOP_LOGPROBS

    def __init__(self, request: CompletionRequest) -> None:
        super().__init__(request)
        self.matcher = Choices((c for c in request.categories or [] if c.strip()), what="categories")
        self.categories = self.choices = self.matcher.values
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in self.categories)
        self.listed = listed
        self.schema = {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": list(self.categories)},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["label", "confidence"],
            "additionalProperties": False,
        }
        self.response_format = json_schema_format("label", self.schema)
        self.system_prompt = (
            "You are a careful text classifier. Choose exactly one category for the text "
            f"from: {listed}.\n"
            'Reply with only a JSON object: {"label": <one category, spelled exactly as '
            'listed>, "confidence": <your confidence from 0 to 1>}.'
        )
        self.max_tokens = 48 + max(len(c) for c in self.categories)
        self.retry_hint = f"Reply again with only the JSON object; label must be one of: {listed}."

    def user_message(self, item: dict[str, Any]) -> str:
        return self.content(item)

    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        data = self._reply_object(reply)
        raw = data.get("label")
        if raw is None:
            raise InvalidOutput("the reply has no 'label' key")
        if not isinstance(raw, str):
            raise InvalidOutput(f"'label' must be a string, got {json.dumps(raw)}")
        label = self.match(raw)
        if label is None:
            raise InvalidOutput(f"label {raw!r} is not one of the categories: {self.listed}")
        return {"label": label, "confidence": self._confidence(label, data, reply)}

    def match(self, raw: str) -> str | None:
        """The declared category ``raw`` names: exact spelling first, then folded."""
        return self.matcher.match(raw)

    def _reply_object(self, reply: ChatReply) -> dict[str, Any]:
        """The JSON reply; a bare category name (a provider ignoring JSON mode) also counts."""
        try:
            return load_json_object(reply)
        except InvalidOutput:
            bare = _bare(reply.text)
            if self.match(bare) is not None:
                return {"label": bare}
            raise

    def _confidence(self, label: str, data: dict[str, Any], reply: ChatReply) -> float:
        if reply.logprobs:
            found = label_confidence(reply.logprobs, label, self.categories)
            if found is not None:
                return found
        if reply.choice_probs:
            scored = _from_choice_probs(reply.choice_probs, label)
            if scored is not None:
                return scored
        own = reported_confidence(data.get("confidence"))
        return DEFAULT_CONFIDENCE if own is None else own


def reported_confidence(value: Any) -> float | None:
    """The model's own confidence as a probability, or None when it gave no number.

    Models write it as 0.8, "0.8", 80 or "80%" whatever the prompt says; replacing the
    ones that are not a plain fraction with the default threw their answer away.
    """
    percent = False
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%"))
        except ValueError:
            return None
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        number = float(max(-1000, min(1000, value)))  # an int of any size, no OverflowError
    elif isinstance(value, float):
        number = value
    else:
        return None
    if math.isnan(number):
        return None
    # 80 means 80 %; 1.2 is a fraction that overshot, not 1.2 % (it is clamped to 1)
    if percent or 2 <= number <= 100:
        number /= 100
    return min(1.0, max(0.0, number))


def _from_choice_probs(probs: dict[str, float], label: str) -> float | None:
    """The chosen label's share of the probability the provider gave the categories."""
    by_name = {fold(k): max(0.0, v) for k, v in probs.items()}
    total = sum(by_name.values())
    chosen = by_name.get(fold(label))
    if chosen is None or total <= 0:
        return None
    return min(1.0, chosen / total)


def label_confidence(
    tokens: list[TokenLogprob], label: str, categories: tuple[str, ...]
) -> float | None:
    """Probability of ``label`` read off the reply's token logprobs, or None if unreadable."""
    text = "".join(t.token for t in tokens)
    span = _value_span(text, label)
    if span is None:
        return None
    start, stop, ends = span
    value = text[start:stop].casefold()
    live = [c.casefold() for c in categories]
    chosen = label.casefold()
    confidence, offset = 1.0, 0
    for token in tokens:
        begin, offset = offset, offset + len(token.token)
        if offset <= start or begin >= stop:
            continue
        lead = text[begin:start] if begin < start else ""
        done = value[: max(0, begin - start)]
        confidence *= _token_share(token, lead, done, chosen, live, ends)
        so_far = done + token.token[len(lead) :].casefold()
        live = [c for c in live if _consistent(so_far, c, ends)]
    return min(1.0, max(0.0, confidence))


def _bare(text: str) -> str:
    """A reply reduced to the category name it may be (quotes and a full stop dropped)."""
    return text.strip().strip("\"'`.").strip()


def _value_span(text: str, label: str) -> tuple[int, int, str] | None:
    """Where ``label`` is written in the reply, and what may end it there.

    The JSON ``label`` value when there is one, else the reply as a bare category name
    (``positive.``), so providers ignoring JSON mode still get a measured confidence.
    """
    found = _LABEL_VALUE.search(text)
    if found is not None:
        start, ends = found.end(), _JSON_ENDS
        stop = text.find('"', start)
    else:
        bare, ends = _bare(text), _BARE_ENDS
        start = text.find(bare) if bare else -1
        stop = start + len(bare)
    if start < 0 or stop < 0 or fold(text[start:stop]) != fold(label):
        return None
    return start, stop, ends


def _token_share(
    token: TokenLogprob, lead: str, done: str, chosen: str, live: list[str], ends: str
) -> float:
    """Share of this token position's mass that agrees with the chosen label."""
    if len(token.top) < 2:
        return math.exp(token.logprob)
    alternatives = dict(token.top)
    alternatives.setdefault(token.token, token.logprob)
    agree = total = 0.0
    for alt, logprob in alternatives.items():
        if not alt.startswith(lead):
            continue
        so_far = done + alt[len(lead) :].casefold()
        matches = [c for c in live if _consistent(so_far, c, ends)]
        if not matches:
            continue
        p = math.exp(logprob)
        total += p
        if chosen in matches:
            agree += p
    return agree / total if total > 0 else math.exp(token.logprob)


def _consistent(so_far: str, category: str, ends: str) -> bool:
    """Whether the value text so far can still be ``category`` (or has just completed it,
    followed by one of ``ends``)."""
    if category.startswith(so_far):
        return True
    rest = so_far[len(category) :]
    return so_far.startswith(category) and rest[:1] != "" and rest[0] in ends
