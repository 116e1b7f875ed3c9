"""Result lines of a provider batch judged like sync replies, and turned into rows.

``Judge`` holds what one AgentFlow batch's rows need (its bound operation, model, price,
id field). Each answered line goes through the operation's ``parse`` exactly as a sync
reply does: a valid answer is a completed row; an invalid one is asked again once (its
``retry_request`` and the first answer's usage are kept as a re-ask line), then fails
with ``invalid_output``; a refusal fails with ``refused``. A line that failed at the
provider fails its row when asking again cannot help (``bad_request``) or the provider
billed it; otherwise (expired, cancelled, 429/5xx lines) the item stays unanswered and
the next apply sends it again.

Answers from a provider batch are priced at the model's batch price; a re-ask sent
synchronously (``batch_reask: sync``) at its sync price.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agentflow_jobs.chat import ChatReply, ChatRequest, TaskHint
from agentflow_jobs.errors import InvalidOutput, OperationInputError
from agentflow_jobs.operations import BoundOperation
from agentflow_jobs.pricing import Price, cost_usd
from agentflow_jobs.providers.batch_api import LineOutcome
from agentflow_jobs.wire import ResultRow, Usage

__all__ = ["FINAL_CODES", "Judge", "Verdict", "chat_from_json", "chat_to_json", "custom_id", "index_of"]

# line failures that asking again would not change: the row fails
FINAL_CODES = frozenset({"bad_request", "auth", "refused"})


def custom_id(index: int) -> str:
    """The item's ``custom_id`` in a provider batch: stable, unique, ``^[A-Za-z0-9_-]{1,64}$``."""
    return f"item-{index}"


def index_of(custom: str) -> int | None:
    head, _, number = custom.partition("-")
    return int(number) if head == "item" and number.isdigit() else None


@dataclasses.dataclass
class Verdict:
    """What one line came to: a row, a re-ask, or nothing (unanswered)."""

    row: ResultRow | None = None
    reask: dict[str, Any] | None = None


class Judge:
    """Rows for one AgentFlow batch's result lines."""

    def __init__(self, bound: BoundOperation, model: str | None, price: Price | None,
                 id_field: str | None) -> None:
        self.bound, self.model, self.price, self.id_field = bound, model, price, id_field

    def build(self, item: dict[str, Any]) -> ChatRequest:
        """The item's request, exactly as sync mode builds it; OperationInputError."""
        return self.bound.build(item, self.model)

    def line(self, index: int, item: dict[str, Any], outcome: LineOutcome,
             carried: dict[str, Any] | None) -> Verdict:
        """Judge one line; ``carried`` is a re-ask's first answer (its usage), if this is one."""
        tally = Usage()
        cost = 0.0 if carried is None else carried.get("cost_usd")
        if carried is not None:
            tally.include(carried)
        if outcome.reply is None:
            if outcome.paid or outcome.code in FINAL_CODES:
                return Verdict(self.failed(index, item, outcome.code or "provider_error",
                                           outcome.message or "the provider batch failed this request", tally, cost))
            return Verdict()
        return self.answered(index, item, outcome.reply, tally, cost, reasked=carried is not None)

    def answered(self, index: int, item: dict[str, Any], reply: ChatReply, tally: Usage,
                 cost: float | None, *, reasked: bool, batch: bool = True) -> Verdict:
        tally.include(reply.usage)
        if not reply.usage.requests:
            tally.requests += 1
        cost = _plus(cost, self._cost(reply, batch))
        if reply.refusal is not None:
            return Verdict(self.failed(index, item, "refused", f"the model declined: {reply.refusal}", tally, cost))
        try:
            result = self.bound.parse(item, reply)
        except InvalidOutput as problem:
            if reasked:
                message = f"{problem.message} (still invalid after one re-ask)"
                return Verdict(self.failed(index, item, "invalid_output", message, tally, cost))
            again = self.bound.retry_request(self.build(item), reply, problem)
            return Verdict(reask={"chat": chat_to_json(again), "usage": {**tally.as_dict(), "cost_usd": cost}})
        except OperationInputError as exc:
            return Verdict(self.failed(index, item, exc.code, exc.message, tally, cost))
        return Verdict(self._row(index, item, "completed", result, None, tally, cost))

    def failed(self, index: int, item: dict[str, Any], code: str, message: str, tally: Usage,
               cost: float | None) -> ResultRow:
        return self._row(index, item, "failed", None, {"code": code, "message": message}, tally, cost)

    def _row(self, index: int, item: dict[str, Any], status: str, result: dict[str, Any] | None,
             error: dict[str, str] | None, tally: Usage, cost: float | None) -> ResultRow:
        usage: dict[str, Any] = tally.as_dict()
        if self.price is not None and cost is not None:
            usage["cost_usd"] = cost
        row_id = None
        if self.id_field is not None and item.get(self.id_field) is not None:
            row_id = str(item[self.id_field])
        return {"index": index, "id": row_id, "status": status,  # type: ignore[typeddict-item]
                "result": result, "error": error, "usage": usage}

    def _cost(self, reply: ChatReply, batch: bool) -> float | None:
        if self.price is None:
            return None
        return cost_usd(self.price, reply.usage.prompt_tokens, reply.usage.completion_tokens, batch=batch)


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def chat_to_json(chat: ChatRequest) -> dict[str, Any]:
    return dataclasses.asdict(chat)


def chat_from_json(data: dict[str, Any]) -> ChatRequest:
    hint = data.get("hint")
    return ChatRequest(**{**data, "hint": TaskHint(**hint) if isinstance(hint, dict) else None})
