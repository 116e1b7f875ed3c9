"""JSON Schema as llama.cpp's grammar builder reads it.

Both the offline model (``local``) and a server that builds a grammar from a
``json_object`` schema (llama-cpp-python's, in the ``openai_compat`` fallback) turn a
schema into a grammar with llama.cpp's converter. That converter keeps no keyword on a
list of types: ``{"type": ["string", "null"], "maxLength": 80}`` becomes an unbounded
string, which a greedy small model fills until its token limit (the ``lead-contacts``
example took 392 s an item and still failed). ``one_type_each`` rewrites such a list as
one ``anyOf`` branch per type, each carrying the node's keywords: the same values are
valid, and each type keeps its bounds. ``each_subschema`` is the one walk over the
schemas a schema holds, for this and for ``local_schema.bounded_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["each_subschema", "one_type_each"]

# where a schema holds schemas: a mapping of them, one, or a list (not under ``not``,
# where a bound added would mean its opposite)
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_ONES = ("items", "additionalProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
# what stays on the node itself when its list of types becomes branches
_ANNOTATIONS = ("title", "description", "default", "examples", "$id", "$schema", "$defs", "definitions")

Schema = Mapping[str, Any]


def each_subschema(schema: Schema, change: Callable[[Schema], Any]) -> dict[str, Any]:
    """A copy of ``schema`` with ``change`` applied to every schema directly inside it."""
    out = dict(schema)
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {k: change(v) if isinstance(v, Mapping) else v for k, v in value.items()}
        elif key in _SCHEMA_ONES and isinstance(value, Mapping):
            out[key] = change(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [change(v) if isinstance(v, Mapping) else v for v in value]
    return out


def one_type_each(schema: Schema) -> dict[str, Any]:
    """``schema`` with every ``type`` list of two or more turned into ``anyOf`` branches,
    one per type, each carrying the node's other keywords."""
    out = each_subschema(schema, one_type_each)
    kinds = out.get("type")
    if not isinstance(kinds, list) or len(kinds) < 2 or "anyOf" in out or "oneOf" in out:
        return out
    node = {k: v for k, v in out.items() if k in _ANNOTATIONS}
    rest = {k: v for k, v in out.items() if k not in _ANNOTATIONS and k != "type"}
    node["anyOf"] = [{**rest, "type": kind} for kind in kinds]
    return node
