"""Column kinds of typed outputs (Parquet files, SQL tables).

A typed output needs one kind per column before its first row. The job declares the
kinds of its result fields (``declared_kinds``: a label is a string and its confidence a
number; an enrich field has its own type); every other column (id, input fields,
provenance) takes the kind of the values it holds (``observe``). A column whose values
disagree with its kind widens: integer and number make number, anything else makes
string. Nested values (objects, lists — an enrich ``list`` field included) and values of
mixed kinds are stored as JSON text in a string column, so no value is ever dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from agentflow_jobs.wire import EnrichField

__all__ = ["ColumnKind", "cell", "declared_kinds", "kind_of", "observe", "widen"]

ColumnKind = Literal["string", "integer", "number", "boolean"]

_FIELD_KINDS: dict[str, ColumnKind] = {
    "string": "string",
    "categorical": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "list": "string",
}


def declared_kinds(operation: str, fields: Iterable[EnrichField] | None) -> dict[str, ColumnKind]:
    """The kinds of an operation's result fields, as the job declares them."""
    if operation == "label":
        return {"label": "string", "confidence": "number"}
    if operation == "summarize":
        return {"summary": "string"}
    if operation == "enrich":
        kinds = {f.name: _FIELD_KINDS[f.type] for f in fields or ()}
        return {**kinds, "context": "string"}
    return {}


def kind_of(value: Any) -> ColumnKind | None:
    """The kind a value needs; None for null (which fits every kind)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def widen(current: ColumnKind | None, seen: ColumnKind | None) -> ColumnKind | None:
    """The kind that holds values of both kinds."""
    if current is None or current == seen:
        return seen if current is None else current
    if seen is None:
        return current
    if {current, seen} == {"integer", "number"}:
        return "number"
    return "string"


def observe(kinds: dict[str, ColumnKind | None], row: Mapping[str, Any]) -> None:
    """Widen ``kinds`` (column order kept: first seen first) with the values of ``row``."""
    for name, value in row.items():
        kinds[name] = widen(kinds.get(name), kind_of(value))


def cell(kind: ColumnKind, value: Any) -> Any:
    """``value`` as a column of ``kind`` stores it (the kinds were widened to fit it)."""
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else _json(value)
    if kind == "number":
        return float(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
