"""Objects on the wire: what the SDK sends, what the engine and server return.

These are shared by every layer (engine, SDK transports, server, runner), so they carry
no behaviour beyond validation and normalisation.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, model_validator
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

__all__ = [
    "OPERATIONS",
    "TERMINAL_STATUSES",
    "Batch",
    "BatchProgress",
    "BatchStatus",
    "CompletionRequest",
    "CompletionResult",
    "EnrichField",
    "FieldType",
    "OutputPage",
    "ProviderBatch",
    "ResultRow",
    "RowError",
    "Usage",
    "normalize_operation",
]

# Canonical operation kinds. ``classify`` is the SDK helper's name for ``label``; any
# other name given as ``operation`` is a custom ``run`` with that ``operation_name``.
OPERATIONS = ("label", "extract", "summarize", "enrich", "run")
FieldType = Literal["string", "number", "integer", "boolean", "categorical", "list"]
BatchStatus = Literal["queued", "running", "completed", "failed", "cancelling", "cancelled"]
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def normalize_operation(operation: str) -> tuple[str, str | None]:
    """Return ``(kind, operation_name)`` for an operation as users spell it."""
    name = operation.strip()
    if name == "classify":
        return "label", None
    if name in OPERATIONS:
        return name, None
    return "run", name


def _missing_template(custom: str | None) -> str:
    # without a template a custom name is far more often a misspelled built-in
    if custom is None:
        return "run needs user_prompt_template"
    close = difflib.get_close_matches(custom, ("classify", *OPERATIONS), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown operation `{custom}`{hint}; a custom operation needs user_prompt_template"


class Usage(BaseModel):
    """Token usage of one row, or summed over many (a row carries it as a dict)."""

    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
        )

    def include(self, other: Usage | Mapping[str, float]) -> None:
        """Add ``other`` (a Usage, or a row's usage dict) into this one, in place.

        A total the provider left at 0 counts as prompt plus completion tokens.
        """
        if isinstance(other, Usage):
            other = other.__dict__
        prompt, completion = int(other["prompt_tokens"]), int(other["completion_tokens"])
        # plain int fields: adding in the field dict skips pydantic's __setattr__, which
        # cost more than the rest of an executor's work per item
        mine = self.__dict__
        mine["prompt_tokens"] += prompt
        mine["completion_tokens"] += completion
        mine["total_tokens"] += int(other["total_tokens"]) or prompt + completion
        mine["requests"] += int(other["requests"])

    def as_dict(self) -> dict[str, int | float]:
        """What ``model_dump()`` gives (a row's ``usage``), without the serializer."""
        return dict(self.__dict__)


class EnrichField(BaseModel):
    """One field an `enrich` job fills in for every item."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Name of the output field.")
    type: FieldType = Field(
        default="string",
        description="Type of the value: string, number, integer, boolean, categorical "
        "(one of `valid_values`) or list (of strings).",
    )
    # at least one value in a spec (the JSON Schema says so); a request with none fails
    # with the operation's own message
    valid_values: list[str] | None = Field(
        default=None,
        description="The allowed values of a categorical field (required for `categorical`).",
        json_schema_extra={"minItems": 1},
    )
    description: str | None = Field(
        default=None, description="What the field means; shown to the model."
    )

    @model_validator(mode="after")
    def _categorical_needs_values(self) -> EnrichField:
        if self.type == "categorical" and not self.valid_values:
            raise ValueError(f"field {self.name!r} is categorical and needs valid_values")
        return self


class CompletionRequest(BaseModel):
    """One operation over a list of items: the unit the engine executes.

    ``operation`` is normalised to one of OPERATIONS; a custom name becomes
    ``operation="run"`` with ``operation_name`` set.
    """

    model_config = ConfigDict(extra="forbid")

    operation: str
    items: list[dict[str, Any]]
    model: str | None = None
    # label
    categories: list[str] | None = None
    # extract
    extraction_instructions: str | None = None
    output_schema: dict[str, Any] | None = None
    # summarize
    summary_instructions: str | None = None
    # enrich
    fields: list[EnrichField] | None = None
    include_context: bool = False
    # run
    system_prompt: str | None = None
    user_prompt_template: str | None = None
    response_format: dict[str, Any] | None = None
    operation_name: str | None = None
    # per-request knobs
    content_field: str = "content"
    id_field: str | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    metadata: dict[str, str] | None = None

    @model_validator(mode="after")
    def _normalise_and_check(self) -> CompletionRequest:
        kind, custom = normalize_operation(self.operation)
        self.operation = kind
        if custom and not self.operation_name:
            self.operation_name = custom
        if kind == "label":
            cats = [c for c in (self.categories or []) if c.strip()]
            if len(set(cats)) < 2:
                raise ValueError("label needs at least 2 distinct categories")
        elif kind == "enrich" and not self.fields:
            raise ValueError("enrich needs at least one field")
        elif kind == "run" and not self.user_prompt_template:
            raise ValueError(_missing_template(custom))
        elif kind == "extract" and not (self.extraction_instructions or self.output_schema):
            raise ValueError("extract needs extraction_instructions or output_schema")
        return self

    def fields_for_hash(self) -> dict[str, Any]:
        """Everything that changes what the model is asked, without the items."""
        return self.model_dump(
            exclude={"items", "metadata", "max_attempts", "id_field"}, exclude_none=True
        )


class RowError(BaseModel):
    """Why one item failed: a stable code and a message for people."""

    code: str
    message: str


class ResultRow(TypedDict):
    """The outcome of one item, as the plain dict every layer passes on.

    The engine builds it, the SDK returns it (``results``, output pages), the engine's
    store and the runner's ledger keep it. ``error`` is a ``RowError`` and ``usage`` a
    ``Usage``, each as its dict; the engine adds ``usage["cost_usd"]`` when the model's
    price is known (absent: unknown, never 0).
    """

    index: int
    id: str | None
    status: Literal["completed", "failed"]
    result: dict[str, Any] | None
    error: dict[str, str] | None
    usage: dict[str, int | float]


class CompletionResult(BaseModel):
    """What a synchronous completion returns: rows in item order, plus total usage."""

    operation: str
    model: str | None = None
    # rows come from our own engine: typed for readers, not validated again row by row
    results: SkipValidation[list[ResultRow]]
    usage: Usage = Field(default_factory=Usage)


class BatchProgress(BaseModel):
    completed: int = 0
    failed: int = 0
    total: int = 0


class ProviderBatch(BaseModel):
    """A batch at the model provider that runs part of a batch (``provider.batch: native``)."""

    id: str | None = None  # the provider's id; None until it is created
    status: str | None = None  # the provider's own word (validating, in_progress, expired, ...)
    total: int = 0
    completed: int = 0
    failed: int = 0
    expires_at: float | None = None  # epoch seconds: when the provider gives up on it
    results_until: float | None = None  # epoch seconds: when its results go (Anthropic: 29 days)
    chunk: int = 0
    kind: str = "ask"  # ask, or reask (invalid answers asked again)
    state: str = ""  # how far the engine got: uploaded, created, harvested, done, failed


class Batch(BaseModel):
    """An asynchronous job over many items."""

    id: str
    object: Literal["batch"] = "batch"
    status: BatchStatus
    operation: str
    model: str | None = None
    total_items: int
    progress: BatchProgress
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: RowError | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    # the provider's own batches running it, when the profile says ``batch: native``
    provider_batches: list[ProviderBatch] = Field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class OutputPage(BaseModel):
    """One page of a batch's output rows, in item order."""

    id: str
    status: BatchStatus
    offset: int
    limit: int
    total: int
    # rows come from our own engine: typed for readers, not validated again row by row
    results: SkipValidation[list[ResultRow]]
