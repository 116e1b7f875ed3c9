"""``extract``: a JSON object of facts pulled from the text.

The model follows ``extraction_instructions``. With an ``output_schema`` the schema is
sent as the structured-output format (non-strict: user schemas rarely meet OpenAI's
strict-mode rules), repeated in the prompt for providers that fall back to JSON mode,
and every reply is validated against it locally; the best-matching validation error,
with its JSON path, is the ``InvalidOutput`` message. A schema whose root ``type``
excludes ``object`` is an ``InvalidRequest``: every reply must be an object, so each item
would cost two requests and still fail. Without a schema the model is asked for any
JSON object.
"""

from __future__ import annotations

import json
from typing import Any

# no type stubs for jsonschema are installed; the ignores stay harmless once they are
import jsonschema
from jsonschema.exceptions import (
    SchemaError,
    best_match,
)

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.errors import InvalidOutput, InvalidRequest
from agentflow_jobs.operations.base import (
    BoundOperation,
    Operation,
    json_schema_format,
    load_json_object,
)
from agentflow_jobs.wire import CompletionRequest

# a jsonschema validator instance (jsonschema.protocols.Validator)
Validator = Any

__all__ = [
    "ExtractOperation",
    "Validator",
    "non_object_root",
    "schema_validator",
    "validate_reply",
]

EXTRACT_MAX_TOKENS = 2048
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def schema_validator(schema: dict[str, Any], *, what: str) -> Validator:
    """A validator for ``schema`` (draft chosen by ``$schema``); InvalidRequest if broken."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        raise InvalidRequest(f"{what} is not a valid JSON Schema: {error.message}") from None
    validator: Validator = cls(schema)
    return validator


def non_object_root(schema: dict[str, Any], *, what: str) -> str | None:
    """Why ``schema`` cannot describe a JSON object, or None when its root may be one.

    Only the root ``type`` is read: a schema without one may still describe objects.
    """
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind
    if not isinstance(kinds, list) or "object" in kinds or not kinds:
        return None
    shown = " or ".join(f"`{k}`" for k in kinds)
    return f"{what} must describe a JSON object (its root type is {shown})"


def validate_reply(validator: Validator, data: Any) -> None:
    """Raise InvalidOutput naming the most relevant place ``data`` breaks the schema."""
    error = best_match(validator.iter_errors(data))
    if error is not None:
        raise InvalidOutput(
            f"the reply does not match the schema at {error.json_path}: {error.message}"
        )


class ExtractOperation(Operation):
    kind = "extract"

    def prepare(self, request: CompletionRequest) -> BoundExtract:
        return BoundExtract(request)


class BoundExtract(BoundOperation):
    max_tokens = EXTRACT_MAX_TOKENS

    def __init__(self, request: CompletionRequest) -> None:
        super().__init__(request)
        lines = ["You extract structured data from text."]
        if request.extraction_instructions:
            lines.append(request.extraction_instructions.strip())
        self.validator: Validator | None = None
        if request.output_schema is not None:
            self.validator = schema_validator(request.output_schema, what="output_schema")
            problem = non_object_root(request.output_schema, what="output_schema")
            if problem is not None:
                raise InvalidRequest(problem)
            self.schema = request.output_schema
            self.response_format = json_schema_format("extraction", self.schema, strict=False)
            shown = json.dumps(self.schema, ensure_ascii=False)
            lines.append(f"The JSON object must follow this JSON Schema: {shown}")
        else:
            self.schema = _ANY_OBJECT
            self.response_format = {"type": "json_object"}
        lines.append(
            "Reply with only a JSON object. Use null for facts the text does not state; "
            "never invent them."
        )
        self.system_prompt = "\n".join(lines)

    def user_message(self, item: dict[str, Any]) -> str:
        return self.content(item)

    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        data = load_json_object(reply)
        if self.validator is not None:
            validate_reply(self.validator, data)
        return data
