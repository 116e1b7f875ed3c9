"""The JSON Schema of a job spec, generated from the models.

The committed ``schemas/job-spec.schema.json`` is this, pretty-printed; editors use it
(yaml-language-server) and ``validate`` checks every document against it before the
models are built. References are inlined and ``X | None`` is written as plain ``X``
because editors complete keys better that way and errors read better ("expected a
string" rather than "not valid under any of the given schemas").
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from agentflow_jobs.spec.models import JobSpec

__all__ = ["SCHEMA_ID", "job_spec_schema", "schema_text"]

SCHEMA_ID = "https://agentflow.dev/schemas/job-spec.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@lru_cache(maxsize=1)
def _cached() -> str:
    raw = JobSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    body = _simplify(_inline(raw, defs))
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        "title": "agentflow-jobs job spec",
        "description": "One job per YAML document: an LLM operation over an input file, "
        "producing an output file. See `agentflow-jobs validate`.",
    }
    schema.update({k: v for k, v in body.items() if k not in ("title", "description")})
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def job_spec_schema() -> dict[str, Any]:
    """A fresh copy of the job-spec JSON Schema."""
    value: dict[str, Any] = json.loads(_cached())
    return value


def schema_text() -> str:
    """The schema as committed: 2-space indented JSON with a final newline."""
    return _cached()


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = _inline(defs[ref.rsplit("/", 1)[-1]], defs)
        siblings = {k: _inline(v, defs) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _inline(v, defs) for k, v in node.items()}


def _simplify(node: Any) -> Any:
    if isinstance(node, list):
        return [_simplify(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _simplify(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            del node["anyOf"]
            node = {**kept[0], **node}
            if node.get("default", 0) is None:
                del node["default"]
    return node
