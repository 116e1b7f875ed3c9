"""``run``: a custom operation (any ``operation_name``) from the caller's own prompts.

The user message is ``user_prompt_template`` rendered with the item's fields (see
``templates``); ``system_prompt`` is sent as is. ``response_format``:

- absent or ``{"type": "text"}`` → ``{"text": <reply>}``;
- ``{"type": "json_object"}`` → the parsed reply, which must be a JSON object;
- ``{"type": "json_schema", "json_schema": {"schema": ...}}`` → the parsed object,
  validated against the schema.

In the JSON modes the system prompt gains one line asking for a JSON object (OpenAI's
JSON mode refuses prompts that never mention JSON). The content field is not special
here: an item is ``empty_content`` when every field the template uses is blank.
"""

from __future__ import annotations

import json
from typing import Any

from agentflow_jobs.chat import ChatReply
from agentflow_jobs.errors import InvalidOutput, InvalidRequest, OperationInputError, TemplateError
from agentflow_jobs.operations.base import BoundOperation, Operation, load_json_object
from agentflow_jobs.operations.extract import (
    Validator,
    non_object_root,
    schema_validator,
    validate_reply,
)
from agentflow_jobs.operations.templates import render, template_fields
from agentflow_jobs.wire import CompletionRequest

__all__ = ["RunOperation"]

_ANY_OBJECT: dict[str, Any] = {"type": "object"}


class RunOperation(Operation):
    kind = "run"

    def prepare(self, request: CompletionRequest) -> BoundRun:
        return BoundRun(request)


class BoundRun(BoundOperation):
    def __init__(self, request: CompletionRequest) -> None:
        super().__init__(request)
        self.template = request.user_prompt_template or ""
        try:
            self.used = template_fields(self.template)
        except TemplateError as error:
            raise InvalidRequest(
                f"user_prompt_template: {error.message} (at character {error.offset})"
            ) from None
        self.validator: Validator | None = None
        self.json_mode = self._set_format(request.response_format)
        system = (request.system_prompt or "").strip()
        if self.json_mode:
            line = "Reply with only a JSON object."
            if self.schema is not _ANY_OBJECT:
                shown = json.dumps(self.schema, ensure_ascii=False)
                line = f"Reply with only a JSON object following this JSON Schema: {shown}"
            system = f"{system}\n\n{line}" if system else line
        self.system_prompt = system or None

    def _set_format(self, fmt: dict[str, Any] | None) -> bool:
        """Pick text or JSON mode from ``response_format``; True for JSON."""
        kind = (fmt or {}).get("type", "text")
        if fmt is None or kind == "text":
            self.retry_hint = "Reply again, complete and shorter."
            return False
        if kind == "json_object":
            self.response_format, self.schema = {"type": "json_object"}, _ANY_OBJECT
            return True
        spec = fmt.get("json_schema")
        if kind != "json_schema" or not isinstance(spec, dict):
            raise InvalidRequest(
                'response_format must be {"type": "text"}, {"type": "json_object"} '
                'or {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}'
            )
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema needs a 'schema' object")
        self.validator = schema_validator(schema, what="response_format.json_schema.schema")
        # the result of a row is a JSON object; a schema that rules one out fails every item
        problem = non_object_root(schema, what="response_format.json_schema.schema")
        if problem is not None:
            raise InvalidRequest(problem)
        self.response_format, self.schema = fmt, schema
        return True

    def user_message(self, item: dict[str, Any]) -> str:
        text = render(self.template, item)
        if self.used and all(_blank(item[name]) for name in self.used):
            fields = ", ".join(repr(n) for n in self.used)
            raise OperationInputError(
                "empty_content",
                f"the item's fields used by user_prompt_template ({fields}) are empty",
            )
        return text

    def parse(self, item: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        if not self.json_mode:
            if reply.finish_reason == "length":
                raise InvalidOutput("the reply was cut off at the token limit")
            if not reply.text.strip():
                raise InvalidOutput("the reply is empty")
            return {"text": reply.text}
        data = load_json_object(reply)
        if self.validator is not None:
            validate_reply(self.validator, data)
        return data


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
