"""A job as the runner sees it: the spec's settings plus how items become requests.

``Job.from_spec`` reads a ``JobSpec`` once; everything after works on this flat view.
``Job.render`` turns an input record into exactly the item that is sent (``content``
plus the fields the prompt templates name) and its ledger key, so planning, sending and
writing output all agree on what an item is. An item the operation would refuse
without asking the model (a missing or empty field, too long) is an input error here,
named in the user's own field names, and is never sent. A CSV file whose header lacks
a field the spec names is refused as a whole, before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentflow_jobs.errors import (
    AgentFlowError,
    ConfigError,
    InputError,
    OperationInputError,
    TemplateError,
)
from agentflow_jobs.hashing import content_hash
from agentflow_jobs.io import InputItem, ItemError, read_columns, read_items
from agentflow_jobs.operations import BoundOperation, get_operation
from agentflow_jobs.operations.templates import template_fields
from agentflow_jobs.runner.ledger import ledger_key
from agentflow_jobs.wire import CompletionRequest, normalize_operation

__all__ = ["Job", "RenderedItem", "model_identity"]

_TEMPLATE_KEYS = ("user_prompt_template", "system_prompt")
_SHOWN_FIELDS = 20  # an item's fields listed in a missing-field message, at most


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """One input item, ready to send (``item``) or already failed (``error``)."""

    index: int
    line: int
    id: Any
    key: str | None
    item: dict[str, Any] | None
    record: dict[str, Any] | None
    error: ItemError | None = None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    value = getattr(obj, name, default)
    return default if value is None else value


@dataclass
class Job:
    """The runner's flat view of one job spec."""

    name: str
    operation: str
    fields: dict[str, Any]
    model: str | None
    profile: str | None
    input_path: Path
    input_format: str
    content_field: str
    id_field: str | None
    on_error: str
    output_path: Path
    output_format: str
    include_input: bool
    include_provenance: bool
    errors_path: Path
    mode: str
    concurrency: int
    max_attempts: int
    max_failure_rate: float
    batch_size: int
    auto_batch_threshold: int
    chunk_size: int
    spec_hash: str
    source: str
    hash_fields: dict[str, Any] = field(default_factory=dict)
    model_identity: str = ""
    template_names: tuple[str, ...] = ()
    # the operation as the engine prepares it, to refuse what it would refuse unsent
    checker: BoundOperation | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: Any) -> Job:
        """The runner's view of a loaded ``JobSpec`` (paths already absolute)."""
        inp, ex = spec.input, spec.execution
        job = cls(
            name=spec.name,
            operation=spec.operation_kind,
            fields=dict(spec.request_fields()),
            model=spec.model,
            profile=spec.resolved_profile,
            input_path=Path(spec.input_path),
            input_format=spec.input_format,
            content_field=_get(inp, "content_field", "content"),
            id_field=inp.id_field,
            on_error=_get(inp, "on_error", "skip"),
            output_path=Path(spec.output_path),
            output_format=spec.output_format,
            include_input=bool(spec.output.include_input),
            include_provenance=bool(spec.output.include_provenance),
            errors_path=Path(spec.errors_path),
            mode=_get(spec, "mode", "auto"),
            concurrency=int(ex.concurrency),
            max_attempts=int(ex.max_attempts),
            max_failure_rate=float(ex.max_failure_rate),
            batch_size=int(ex.batch_size),
            auto_batch_threshold=int(ex.auto_batch_threshold),
            chunk_size=int(ex.chunk_size),
            spec_hash=str(spec.spec_hash),
            source=str(spec.source),
        )
        job._prepare()
        return job

    def _prepare(self) -> None:
        kind, _custom = normalize_operation(self.operation)
        request = CompletionRequest(
            operation=self.operation, items=[], model=self.model, **self.fields
        )
        self.hash_fields = request.fields_for_hash()
        self.model_identity = model_identity(self.model, self.profile)
        names: list[str] = []
        for key in _TEMPLATE_KEYS:
            template = self.fields.get(key)
            if isinstance(template, str):
                try:
                    names.extend(n for n in template_fields(template) if n not in names)
                except TemplateError:
                    continue
        self.template_names = tuple(names)
        self.operation = kind
        # the runner sends content as `content`; checked under the user's name, the
        # operation's own messages name the field the user knows
        content_field = self.content_field if kind != "run" else "content"
        try:
            self.checker = get_operation(kind).prepare(
                request.model_copy(update={"content_field": content_field})
            )
        except AgentFlowError:  # a broken request fails as a whole when sent, as before
            self.checker = None

    @property
    def needs_content(self) -> bool:
        return self.operation != "run" or "content" in self.template_names

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.completions.*`` / ``client.batches.submit``."""
        kwargs = {k: v for k, v in self.fields.items() if v is not None}
        kwargs.pop("max_attempts", None)
        kwargs["max_attempts"] = self.max_attempts
        return kwargs

    def output_identity(self) -> str:
        """What the output file depends on besides the ledger (format, columns, paths)."""
        return content_hash(
            str(self.output_path),
            self.output_format,
            self.include_input,
            self.include_provenance,
            str(self.errors_path),
            self.id_field,
        )

    def items(self) -> Iterator[RenderedItem]:
        """Every input item, rendered and keyed, in input order (streaming)."""
        columns = read_columns(self.input_path, format=self.input_format)
        fail = self.on_error == "fail"
        on_error: Literal["skip", "fail"] = "fail" if fail else "skip"
        for raw in read_items(self.input_path, format=self.input_format, on_error=on_error):
            if columns is not None:  # checked once there is a row that would fail
                self.check_columns(columns)
                columns = None
            yield self.render(raw)

    def named_fields(self) -> list[tuple[str, str]]:
        """``(spec key, field)`` for every item field the spec names."""
        named = [("input.content_field", self.content_field)] if self.needs_content else []
        if self.id_field is not None:
            named.append(("input.id_field", self.id_field))
        named.extend(
            ("a prompt template", name) for name in self.template_names if name != "content"
        )
        return named

    def check_columns(self, columns: list[str]) -> None:
        """A CSV header without a field the spec names fails the job, naming the columns.

        Every row would fail alike (or carry no id), and `retry` could not help.
        """
        missing = [f"{name!r} ({what})" for what, name in self.named_fields() if name not in columns]
        if missing:
            have = ", ".join(repr(c) for c in columns) if columns else "none"
            raise InputError(
                f"the header has no column {', '.join(missing)}; its columns are: {have}",
                path=str(self.input_path),
                line=1,
            )

    def item_id(self, raw: InputItem) -> Any:
        """The item's own ``id_field`` value, else None; its position only with no id_field.

        Never a made-up number when ``id_field`` is set: the position of one item could
        equal another item's real id. (The errors file also carries the line.)
        """
        if self.id_field is None:
            return raw.index
        return raw.record.get(self.id_field) if raw.record is not None else None

    def render(self, raw: InputItem) -> RenderedItem:
        record = raw.record
        ident = self.item_id(raw)
        if record is None:
            return RenderedItem(raw.index, raw.line, ident, None, None, None, raw.error)
        item: dict[str, Any] = {}
        if record.get(self.content_field) is not None:
            item["content"] = _text(record[self.content_field])
        elif self.needs_content:
            return self._failed(raw, ident, _absent(record, self.content_field, "the content field"))
        for name in self.template_names:
            if name == "content":
                continue
            if name not in record:
                return self._failed(raw, ident, _absent(record, name, "used by a prompt template"))
            item[name] = record[name]
        error = self.unsendable(item)
        if error is not None:
            return self._failed(raw, ident, error)
        try:
            key = ledger_key(self.operation, self.hash_fields, self.model_identity, item)
        except (RecursionError, ValueError):
            return self._failed(raw, ident, ItemError("invalid_input", "value nested too deeply"))
        return RenderedItem(raw.index, raw.line, ident, key, item, record)

    def _failed(self, raw: InputItem, ident: Any, error: ItemError) -> RenderedItem:
        located = ItemError(error.code, f"line {raw.line}: {error.message}")
        return RenderedItem(raw.index, raw.line, ident, None, None, raw.record, located)

    def unsendable(self, item: dict[str, Any]) -> ItemError | None:
        """Why the operation would fail ``item`` without asking the model, if it would."""
        if self.checker is None:
            return None
        probe = item if self.operation == "run" else {self.content_field: item.get("content")}
        try:
            self.checker.checked_message(probe)
        except OperationInputError as exc:
            return ItemError(exc.code, exc.message)
        return None


def _absent(record: dict[str, Any], name: str, role: str) -> ItemError:
    """A field the item lacks (or holds null for), with the fields it does have."""
    if name in record:
        return ItemError("empty_content", f"item field {name!r} ({role}) is null")
    names = list(record)
    shown = ", ".join(repr(n) for n in names[:_SHOWN_FIELDS])
    if len(names) > _SHOWN_FIELDS:
        shown += f", … ({len(names)} in all)"
    return ItemError("missing_field", f"no field {name!r} ({role}); the item has {shown or 'no fields'}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def model_identity(model: str | None, profile_name: str | None) -> str:
    """Which model answers this job (the profile resolves it; never a secret).

    Pointing the profile at another endpoint, model or model file is a model change: the
    ledger misses and every item is sent again.
    """
    try:
        from agentflow_jobs.sdk.profiles import load_profile

        return load_profile(profile_name).model_identity(model)
    except (ConfigError, ImportError, OSError):
        return f"{profile_name or 'local'}:unresolved"
