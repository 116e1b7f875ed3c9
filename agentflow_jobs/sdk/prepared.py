"""An operation prepared once for many requests: what a caller sending items in chunks needs.

``prepare_operation(operation, model, content_field=..., **fields)`` checks the fields as
a ``CompletionRequest`` would and prepares the operation the way the engine does, with
no client and nothing sent. The ``PreparedOperation`` it returns then tells, per item,
what the engine would refuse without asking the model (a missing or empty field, an
item too long), names the item fields the prompt templates use, and gives the fields
that change what the model is asked (the ledger key of a caller that keeps one).

For ``plan``'s estimate it also renders an item's chat messages as the engine would
send them (``messages``) and guesses the tokens of one answer (``output_tokens``).

Items are checked as they will be sent: the content under ``content``, plus the fields
the templates name. Refusals name ``content_field``, the field the caller's user knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentflow_jobs.errors import AgentFlowError, OperationInputError, TemplateError
from agentflow_jobs.operations import BoundOperation, get_operation, template_fields
from agentflow_jobs.pricing import estimate_output_tokens
from agentflow_jobs.wire import CompletionRequest, EnrichField, RowError

__all__ = ["PreparedOperation", "prepare_operation"]

_TEMPLATE_KEYS = ("user_prompt_template", "system_prompt")


@dataclass(frozen=True)
class PreparedOperation:
    """One operation with its fields, checked and prepared once."""

    kind: str  # label | extract | summarize | enrich | run
    model: str | None
    fields: dict[str, Any]  # keyword arguments for completions.run / batches.submit
    hash_fields: dict[str, Any]  # everything that changes what the model is asked
    template_fields: tuple[str, ...]  # item fields the prompt templates name, in order
    content_field: str
    _bound: BoundOperation | None = field(default=None, repr=False, compare=False)

    @property
    def needs_content(self) -> bool:
        """Whether every item must carry ``content``."""
        return self.kind != "run" or "content" in self.template_fields

    def refusal(self, item: dict[str, Any]) -> RowError | None:
        """Why the engine would fail ``item`` without asking the model, if it would."""
        if self._bound is None:
            return None
        probe = item if self.kind == "run" else {self.content_field: item.get("content")}
        try:
            self._bound.checked_message(probe)
        except OperationInputError as exc:
            return RowError(code=exc.code, message=exc.message)
        return None

    def messages(self, item: dict[str, Any]) -> list[dict[str, str]] | None:
        """The chat messages the engine sends for ``item``; None when it would send none."""
        if self._bound is None:
            return None
        probe = item if self.kind == "run" else {self.content_field: item.get("content")}
        try:
            return self._bound.build(probe, self.model).messages
        except AgentFlowError:
            return None

    @property
    def asks_schema(self) -> bool:
        """Whether the operation asks for JSON following a schema (structured output)."""
        fmt = self._bound.response_format if self._bound is not None else None
        return fmt is not None and fmt.get("type") == "json_schema"

    def output_tokens(self) -> int:
        """The tokens of one answer, guessed from the output's shape and ``max_tokens``."""
        bound, fields = self._bound, self.fields
        schema = fields.get("output_schema")
        kind = self.kind
        if kind == "run" and bound is not None and bound.schema is not None:
            kind, schema = "extract", bound.schema  # a JSON reply of a known shape
        return estimate_output_tokens(
            kind,
            categories=fields.get("categories"),
            fields=[EnrichField.model_validate(f) for f in fields.get("fields") or ()],
            output_schema=schema,
            max_tokens=bound.max_tokens if bound is not None else None,
            include_context=bool(fields.get("include_context")),
        )


def prepare_operation(
    operation: str, model: str | None = None, *, content_field: str = "content", **fields: Any
) -> PreparedOperation:
    """Check ``fields`` for ``operation`` and prepare it once (nothing is sent).

    A request the engine would refuse as a whole (a broken template or schema) still
    prepares, with no item checks: it fails as a whole when it is sent.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    request = CompletionRequest(operation=operation, items=[], model=model, **given)
    kind = request.operation
    if request.operation_name is not None:  # a custom name stays with the fields sent
        given["operation_name"] = request.operation_name
    # a run sends its items as they are; the others are checked under the user's name
    checked_as = content_field if kind != "run" else "content"
    try:
        bound: BoundOperation | None = get_operation(kind).prepare(
            request.model_copy(update={"content_field": checked_as})
        )
    except AgentFlowError:
        bound = None
    return PreparedOperation(
        kind=kind,
        model=model,
        fields=given,
        hash_fields=request.fields_for_hash(),
        template_fields=_template_fields(given),
        content_field=content_field,
        _bound=bound,
    )


def _template_fields(fields: dict[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for key in _TEMPLATE_KEYS:
        template = fields.get(key)
        if isinstance(template, str):
            try:
                names.extend(n for n in template_fields(template) if n not in names)
            except TemplateError:
                continue
    return tuple(names)
