"""``enrich``: one value per declared field, typed as declared.

The result has one key per field, in declared order. Types: ``categorical`` (one of
``valid_values``, matched exactly, else ignoring case and whitespace, returned in the
declared spelling), ``integer`` (``3`` or ``3.0`` or ``"3"`` → ``3``; ``"abc"`` or ``3.5``
is invalid), ``number``, ``boolean`` (also ``"true"``/``"yes"``/``"false"``/``"no"``),
``string``, ``list`` (a list of strings). Keys the model adds beyond the fields are
dropped. Categorical values differing only in case, spacing or Unicode form, and ``valid_values`` on
a field that is not categorical (it would be ignored), are an ``InvalidRequest``.

Numbers in strings may use commas as thousands separators (``"1,234"``); any other
comma (``"1,5"``) is invalid rather than guessed, since a decimal comma read as a
separator is a silent 10x. Integer strings are parsed exactly (no trip through float);
numbers beyond float range, infinities and NaN are invalid.

With ``include_context`` every field ``name`` gets a sibling key ``"<name>_context"``: a
one-sentence justification (a string). Flat keys keep one column per value in CSV
output; a field set where a context key would collide with another field's name is an
``InvalidRequest``. The JSON schema sent to the model carries the same keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.errors import InvalidOutput, InvalidRequest
from agentflow_jobs.operations.base import (
    BoundOperation,
    Choices,
    Operation,
    json_schema_format,
    load_json_object,
)
from agentflow_jobs.wire import CompletionRequest, EnrichField

__all__ = ["CONTEXT_SUFFIX", "EnrichOperation", "coerce_field"]

CONTEXT_SUFFIX = "_context"
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
}


class EnrichOperation(Operation):
    kind = "enrich"

    def prepare(self, request: CompletionRequest) -> BoundEnrich:
        return BoundEnrich(request)


class BoundEnrich(BoundOperation):
    def __init__(self, request: CompletionRequest) -> None:
        super().__init__(request)
        self.fields = list(request.fields or [])
        self.context = request.include_context
        _check_names(self.fields, self.context)
        self.allowed = _choices(self.fields)
        properties: dict[str, Any] = {}
        for spec in self.fields:
            properties[spec.name] = field_schema(spec)
            if self.context:
                properties[spec.name + CONTEXT_SUFFIX] = {"type": "string"}
        self.schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        self.response_format = json_schema_format("enrichment", self.schema)
        self.system_prompt = _system_prompt(self.fields, self.context)
        per_field = 48 + (96 if self.context else 0)
        self.max_tokens = min(8192, 128 + per_field * len(self.fields))

    def user_message(self, item: dict[str, Any]) -> str:
        return self.content(item)

    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        data = load_json_object(reply)
        result: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name not in data:
                raise InvalidOutput(f"the reply has no value for field {spec.name!r}")
            result[spec.name] = coerce_field(spec, data[spec.name], self.allowed.get(spec.name))
            if self.context:
                key = spec.name + CONTEXT_SUFFIX
                note = data.get(key)
                if not isinstance(note, str) or not note.strip():
                    raise InvalidOutput(f"the reply has no justification {key!r} (a string)")
                result[key] = note.strip()
        return result


def field_schema(spec: EnrichField) -> dict[str, Any]:
    """The JSON schema of one field's value."""
    if spec.type == "categorical":
        schema: dict[str, Any] = {"type": "string", "enum": list(spec.valid_values or [])}
    else:
        schema = dict(_JSON_TYPES[spec.type])
    if spec.description:
        schema["description"] = spec.description
    return schema


def _check_names(fields: list[EnrichField], context: bool) -> None:
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidRequest(
            f"enrich fields must have distinct names; repeated: {', '.join(dupes)}"
        )
    if context:
        clash = [n for n in names if n + CONTEXT_SUFFIX in names]
        if clash:
            raise InvalidRequest(
                f"with include_context, field {clash[0] + CONTEXT_SUFFIX!r} collides with "
                f"the context key of field {clash[0]!r}; rename it"
            )


def _choices(fields: list[EnrichField]) -> dict[str, Choices]:
    """Each categorical field's allowed values; valid_values elsewhere are a mistake."""
    choices: dict[str, Choices] = {}
    for spec in fields:
        if spec.type != "categorical" and spec.valid_values is not None:
            raise InvalidRequest(
                f"field {spec.name!r} has valid_values but its type is {spec.type!r}; "
                "valid_values only apply to categorical fields"
            )
        if spec.type == "categorical":
            what = f"field {spec.name!r}: valid_values"
            choices[spec.name] = Choices(spec.valid_values or [], what=what)
    return choices


def _system_prompt(fields: list[EnrichField], context: bool) -> str:
    lines = ["You enrich records: read the text and fill in these fields."]
    for spec in fields:
        line = f"- {spec.name} ({spec.type})"
        if spec.valid_values:
            line += " one of: " + ", ".join(
                json.dumps(v, ensure_ascii=False) for v in spec.valid_values
            )
        if spec.description:
            line += f": {spec.description}"
        lines.append(line)
    keys = ", ".join(f.name for f in fields)
    if context:
        lines.append(
            f"For each field also give '<field>{CONTEXT_SUFFIX}': one short sentence saying "
            "what in the text supports the value."
        )
    lines.append(
        f"Reply with only a JSON object with the keys: {keys}"
        + (f" and their {CONTEXT_SUFFIX} keys." if context else ".")
    )
    return "\n".join(lines)


def coerce_field(spec: EnrichField, value: Any, choices: Choices | None = None) -> Any:
    """``value`` as the field's declared type; raises InvalidOutput when it cannot be.
    A categorical field matches against ``choices`` (built from its valid_values when
    not given)."""
    if spec.type == "categorical":
        allowed = choices or Choices(spec.valid_values or [], what="valid_values")
        coerced = (allowed.match(value) if isinstance(value, str) else None) or _BAD
    else:
        coerced = _COERCERS[spec.type](spec, value)
    if isinstance(coerced, _Bad):
        shown = json.dumps(value, ensure_ascii=False, default=str)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        wanted = _WANTED.get(spec.type) or "one of " + ", ".join(spec.valid_values or [])
        why = f" ({coerced.reason})" if coerced.reason else ""
        raise InvalidOutput(f"field {spec.name!r} must be {wanted}, got {shown}{why}")
    return coerced


class _Bad:
    """A value that cannot be coerced; ``reason`` says why when the type alone does not."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason


_BAD = _Bad()
_NOT_FINITE = _Bad("not a finite number")
_DECIMAL_COMMA = _Bad("ambiguous decimal comma; write decimals with a point")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_COMMA_DECIMAL = re.compile(r"[+-]?\d+,\d+")
_WANTED = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "list": "a list of strings",
}


def _as_string(spec: EnrichField, value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _BAD


def _number_text(text: str) -> str | _Bad:
    """``text`` without thousands separators; any other comma is refused, not guessed."""
    text = text.strip()
    if "," not in text:
        return text
    if _THOUSANDS.fullmatch(text):
        return text.replace(",", "")
    return _DECIMAL_COMMA if _COMMA_DECIMAL.fullmatch(text) else _BAD


def _finite(number: int | float) -> int | float | _Bad:
    """``number`` unless it is NaN, infinite, or an int too large to be a float."""
    try:
        return number if math.isfinite(number) else _NOT_FINITE
    except OverflowError:  # a JSON integer literal of hundreds of digits
        return _NOT_FINITE


def _as_number(spec: EnrichField, value: Any) -> Any:
    if isinstance(value, str):
        text = _number_text(value)
        if isinstance(text, _Bad):
            return text
        try:
            value = float(text)
        except ValueError:
            return _BAD
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _BAD
    return _finite(value)


def _as_integer(spec: EnrichField, value: Any) -> Any:
    if isinstance(value, str):
        text = _number_text(value)
        if isinstance(text, _Bad):
            return text
        try:
            value = int(text)  # exact: "12345678901234567891" must not pass through float
        except ValueError:
            value = text  # "3.0" or "1e3": a whole number written as a float
    number = _as_number(spec, value)
    if isinstance(number, _Bad | int):
        return number
    return int(number) if number.is_integer() else _BAD


def _as_boolean(spec: EnrichField, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    word = str(value).strip().casefold() if isinstance(value, str | int) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return _BAD


def _as_list(spec: EnrichField, value: Any) -> Any:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if not isinstance(value, list):
        return _BAD
    out = [_as_string(spec, v) for v in value]
    return _BAD if any(isinstance(v, _Bad) for v in out) else out


_COERCERS: dict[str, Callable[[EnrichField, Any], Any]] = {
    "string": _as_string,
    "number": _as_number,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "list": _as_list,
}
