"""A job's input items as the runner sends them: rendered, keyed, or refused unsent.

``job_items(job)`` streams the input and turns every record into exactly the item that
is sent (``content`` plus the fields the prompt templates name) and its ledger key, so
planning, sending and writing output all agree on what an item is. An item the
operation would refuse without asking the model (a missing or empty field, too long)
is an input error here, named in the user's own field names, and is never sent. A CSV
file whose header lacks a field the spec names is refused as a whole, before anything
is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentflow_jobs.errors import InputError
from agentflow_jobs.io import InputItem, read_columns, read_items
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import ledger_key
from agentflow_jobs.urls import display_url
from agentflow_jobs.wire import RowError

__all__ = [
    "FIRST_BLOCK",
    "RenderedItem",
    "blocks",
    "check_columns",
    "item_id",
    "job_items",
    "named_fields",
    "render",
]

_SHOWN_FIELDS = 20  # an item's fields listed in a missing-field message, at most
_BLOCK = 500  # items looked up in the ledger at once
FIRST_BLOCK = 32  # a sender's first block: its first request is not held back by a whole one


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """One input item, ready to send (``item``) or already failed (``error``)."""

    index: int
    line: int
    id: Any
    key: str | None
    item: dict[str, Any] | None
    record: dict[str, Any] | None
    error: RowError | None = None


def job_items(job: Job) -> Iterator[RenderedItem]:
    """Every input item, rendered and keyed, in input order (streaming)."""
    spec = job.spec
    path, fmt = spec.input_location, spec.input_format
    columns = read_columns(path, format=fmt)
    for raw in read_items(path, format=fmt, on_error=spec.input.on_error):
        if columns is not None:  # checked once there is a row that would fail
            check_columns(job, columns)
            columns = None
        yield render(job, raw)


def named_fields(job: Job) -> list[tuple[str, str]]:
    """``(spec key, field)`` for every item field the spec names."""
    inp = job.spec.input
    named = [("input.content_field", inp.content_field)] if job.operation.needs_content else []
    if inp.id_field is not None:
        named.append(("input.id_field", inp.id_field))
    named.extend(
        ("a prompt template", name) for name in job.operation.template_fields if name != "content"
    )
    return named


def check_columns(job: Job, columns: list[str]) -> None:
    """A CSV header without a field the spec names fails the job, naming the columns.

    Every row would fail alike (or carry no id), and `retry` could not help.
    """
    missing = [f"{name!r} ({what})" for what, name in named_fields(job) if name not in columns]
    if missing:
        have = ", ".join(repr(c) for c in columns) if columns else "none"
        raise InputError(
            f"the header has no column {', '.join(missing)}; its columns are: {have}",
            path=display_url(job.spec.input_location),
            line=1,
        )


def item_id(job: Job, raw: InputItem) -> Any:
    """The item's own ``id_field`` value, else None; its position only with no id_field.

    Never a made-up number when ``id_field`` is set: the position of one item could
    equal another item's real id. (The errors file also carries the line.)
    """
    id_field = job.spec.input.id_field
    if id_field is None:
        return raw.index
    return raw.record.get(id_field) if raw.record is not None else None


def render(job: Job, raw: InputItem) -> RenderedItem:
    """``raw`` as it is sent, with its ledger key; or failed, saying why."""
    record, ident = raw.record, item_id(job, raw)
    if record is None:
        return RenderedItem(raw.index, raw.line, ident, None, None, None, raw.error)
    item = _sent_item(job, record)
    if isinstance(item, RowError):
        return _failed(raw, ident, item)
    operation = job.operation
    try:
        key = ledger_key(operation.kind, operation.hash_fields, job.model_identity, item)
    except (RecursionError, ValueError):
        return _failed(raw, ident, RowError(code="invalid_input", message="value nested too deeply"))
    return RenderedItem(raw.index, raw.line, ident, key, item, record)


def _sent_item(job: Job, record: dict[str, Any]) -> dict[str, Any] | RowError:
    """The item sent for ``record``, or why none is."""
    operation, content_field = job.operation, job.spec.input.content_field
    item: dict[str, Any] = {}
    if record.get(content_field) is not None:
        item["content"] = _text(record[content_field])
    elif operation.needs_content:
        return _absent(record, content_field, "the content field")
    for name in operation.template_fields:
        if name == "content":
            continue
        if name not in record:
            return _absent(record, name, "used by a prompt template")
        item[name] = record[name]
    refused = operation.refusal(item)
    return refused if refused is not None else item


def _failed(raw: InputItem, ident: Any, error: RowError) -> RenderedItem:
    located = RowError(code=error.code, message=f"line {raw.line}: {error.message}")
    return RenderedItem(raw.index, raw.line, ident, None, None, raw.record, located)


def _absent(record: dict[str, Any], name: str, role: str) -> RowError:
    """A field the item lacks (or holds null for), with the fields it does have."""
    if name in record:
        return RowError(code="empty_content", message=f"item field {name!r} ({role}) is null")
    names = list(record)
    shown = ", ".join(repr(n) for n in names[:_SHOWN_FIELDS])
    if len(names) > _SHOWN_FIELDS:
        shown += f", … ({len(names)} in all)"
    return RowError(code="missing_field", message=f"no field {name!r} ({role}); the item has {shown or 'no fields'}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def blocks(
    items: Iterator[RenderedItem], size: int = _BLOCK, *, first: int | None = None
) -> Iterator[list[RenderedItem]]:
    """``items`` in lists of ``size``: one ledger look-up (or transaction) per block.

    ``first`` makes the first list shorter: a sender's first request then waits for
    that many items to be read and looked up rather than a whole block.
    """
    block: list[RenderedItem] = []
    limit = first or size
    for item in items:
        block.append(item)
        if len(block) >= limit:
            yield block
            block, limit = [], size
    if block:
        yield block
