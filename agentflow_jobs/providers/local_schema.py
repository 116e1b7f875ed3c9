"""The JSON Schema the offline model generates under, as llama.cpp grammars need it.

A greedy small model repeats itself until its token budget runs out, and a reply cut off
there does not parse; so ``bounded_schema`` bounds every string, array and object, and
the grammar makes a string close at its bound instead. A summary is prose, not a field:
``with_room`` gives it a few sentences, and ``whole_sentences`` ends one that still ran
into its bound at its last whole sentence (or says it was cut). ``pin_values`` fixes the
properties already decided by scoring choices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentflow_jobs.providers.schema_grammar import each_subschema, one_type_each

if TYPE_CHECKING:
    from agentflow_jobs.providers.local_prompts import ReplyPlan

__all__ = ["PROSE_LIMIT", "bounded_schema", "pin_values", "whole_sentences", "with_room"]

# Longest string a generated field may hold; keeps greedy repetition inside the budget.
_STRING_LIMIT = 96
# Longest summary: room for a few sentences (a 96-character bound cut them mid-sentence).
PROSE_LIMIT = 480
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def with_room(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``schema`` with property ``name`` allowed ``PROSE_LIMIT`` characters."""
    props = dict(schema.get("properties") or {})
    if not isinstance(props.get(name), Mapping):
        return dict(schema)
    props[name] = {"maxLength": PROSE_LIMIT, **props[name]}
    return {**schema, "properties": props}


def whole_sentences(text: str, plan: ReplyPlan) -> tuple[str, bool]:
    """The reply with each prose field that ran into its length bound cut back to its
    last whole sentence; ``False`` when one has no sentence end to cut back to (the reply
    is then truncated, and says so)."""
    if not plan.prose_fields:
        return text, True
    try:
        data = json.loads(text)
    except ValueError:
        return text, True
    complete = True
    for name in plan.prose_fields:
        value = data.get(name) if isinstance(data, dict) else None
        if not isinstance(value, str) or len(value) < PROSE_LIMIT - 1:
            continue
        ends = [m.end() for m in _SENTENCE_END.finditer(value)]
        if ends:
            data[name] = value[: ends[-1]].strip()
        else:
            complete = False
    return json.dumps(data, ensure_ascii=False), complete


def bounded_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with lengths bounded, so a greedy loop ends inside the token budget.

    A reply cut off by ``max_tokens`` would not parse; a ``maxLength`` in the grammar makes
    the string close instead. Extra properties are closed off for the same reason. A
    list of types is one branch per type first (``one_type_each``), each bounded.
    """
    return _bounded(one_type_each(schema))


def _bounded(schema: Mapping[str, Any]) -> dict[str, Any]:
    out = each_subschema(schema, _bounded)  # every schema inside, ``$defs`` included
    kind = out.get("type")
    if kind == "string" and "enum" not in out and "const" not in out:
        out.setdefault("maxLength", _STRING_LIMIT)
    elif kind == "array":
        out.setdefault("maxItems", 8)
    elif kind == "object" or "properties" in out:
        out.setdefault("properties", {})
        out.setdefault("additionalProperties", False)
    return out


def pin_values(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with already-decided properties fixed (``const``) and required."""
    out = dict(schema)
    props = dict(out.get("properties") or {})
    for name, value in values.items():
        props[name] = {"const": value}
    out["properties"] = props
    required = list(out.get("required") or [])
    out["required"] = [*required, *(n for n in values if n not in required)]
    return out
