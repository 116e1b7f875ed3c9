"""What callers send the engine: request bodies and uploaded item files, validated.

A body becomes a ``CompletionRequest`` or a 422 whose message names each offending
field path (``describe_errors`` also words FastAPI's own validation errors). An
uploaded file is read by ``io.readers`` like any input file, by its extension; a
malformed item refuses the whole upload with a 422 naming file and line, since
nothing has been sent yet. The SDK's embedded transport and the server share both.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentflow_jobs.errors import InputError, UnprocessableEntityError, status_error
from agentflow_jobs.io import extension_format, read_stream
from agentflow_jobs.wire import CompletionRequest

__all__ = ["describe_errors", "items_from_file", "parse_request", "upload_payload"]

_UPLOAD_TYPES = ".jsonl, .csv, .json or .txt"
# the text formats; Parquet is a job input (io.parquet), not an upload type of the API
_UPLOAD_FORMATS = ("jsonl", "csv", "json", "txt")


def parse_request(payload: Mapping[str, Any]) -> CompletionRequest:
    """Validate a request body; a 422 error names the offending field path."""
    try:
        return CompletionRequest.model_validate(dict(payload))
    except ValidationError as exc:
        message = describe_errors(exc.errors())
        raise _unprocessable(message, {"error": {"code": "validation_error", "message": message}}) from None


def describe_errors(errors: Sequence[Any], body: Any = None) -> str:
    """``field.path: what is wrong`` for each pydantic/FastAPI validation error.

    ``body`` is the raw request text, used to place a JSON syntax error by line and column.
    """
    problems = []
    for err in errors:
        if err.get("type") == "json_invalid":
            problems.append(_json_syntax(err, body))
            continue
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        where = ".".join(loc) or _guess_field(str(err.get("msg", "")))
        problems.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(problems) or "invalid request"


def _json_syntax(err: Mapping[str, Any], body: Any) -> str:
    # FastAPI puts the character offset where a field path belongs; turn it into a place
    loc = err.get("loc", ())
    pos = loc[-1] if loc and isinstance(loc[-1], int) else None
    reason = str((err.get("ctx") or {}).get("error", "")).strip()
    where = ""
    if pos is not None and isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        line = text.count("\n", 0, pos) + 1
        where = f"line {line}, column {pos - text.rfind(chr(10), 0, pos)}"
    elif pos is not None:
        where = f"character {pos + 1}"
    details = ": ".join(part for part in (where, reason.lower()) if part)
    return f"request body is not valid JSON ({details})" if details else "request body is not valid JSON"


def _guess_field(message: str) -> str:
    # model-level checks carry no location; name the field their message is about
    if message.startswith("Value error, unknown operation") or message.startswith("unknown operation"):
        return "operation"
    for name in ("categories", "fields", "user_prompt_template", "extraction_instructions"):
        if name in message:
            return name
    return "body"


def items_from_file(filename: str, data: bytes) -> list[dict[str, Any]]:
    """Items from an uploaded file, by extension: .jsonl (.ndjson), .csv, .json or .txt."""
    name = Path(filename).name
    fmt = extension_format(name)
    if fmt not in _UPLOAD_FORMATS:
        raise _unprocessable(f"file: {name}: unsupported file type (use {_UPLOAD_TYPES})")
    try:
        items = read_stream(io.BytesIO(data), fmt, name=name, on_error="fail")
        return [item.record for item in items if item.record is not None]
    except InputError as exc:
        raise _unprocessable(f"file: {exc.message}") from None


def upload_payload(form: Mapping[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The submit body an upload stands for (the same for the SDK and the server)."""
    fields = form.get("fields") or {}
    if not isinstance(fields, dict):
        raise status_error(422, "fields: expected a JSON object of operation fields")
    payload: dict[str, Any] = {**fields, "operation": form.get("operation"), "items": items}
    for key in ("model", "metadata"):
        if form.get(key) is not None:
            payload[key] = form[key]
    return payload


def _unprocessable(message: str, body: Any = None) -> UnprocessableEntityError:
    error = status_error(422, message, body=body)
    assert isinstance(error, UnprocessableEntityError)
    return error
