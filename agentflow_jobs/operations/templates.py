"""Prompt templates: plain ``{field}`` placeholders naming item fields, nothing more.

A placeholder is ``{name}`` where ``name`` starts with a letter or ``_`` and continues
with letters, digits, ``_`` or ``-``; ``{{`` and ``}}`` are literal braces. Everything
``str.format`` would also accept — ``{a.b}``, ``{x[0]}``, ``{0}``, ``{}``, ``{x!r}``,
``{x:>5}`` — is refused with a ``TemplateError`` carrying the offset of the offending
brace, because attribute and index access on item values would let a template reach
into Python objects (``{content.__init__.__globals__}``). Rendering never calls
``str.format``: it splices item values into the parsed pieces.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from agentflow_jobs.operations.base import OperationInputError, value_text

__all__ = ["TemplateError", "render", "template_fields"]


class TemplateError(ValueError):
    """A template that is not plain ``{field}`` placeholders; ``offset`` locates it."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# A parsed template: literal text (str) and field names (tuple of one str), in order.
Piece = str | tuple[str]


def template_fields(template: str) -> list[str]:
    """The distinct field names ``template`` uses, in order of first use."""
    seen: dict[str, None] = {}
    for piece in _parse(template):
        if isinstance(piece, tuple):
            seen.setdefault(piece[0], None)
    return list(seen)


def render(template: str, item: dict[str, Any], *, source: str = "user_prompt_template") -> str:
    """``template`` with each placeholder replaced by the item's value, as text."""
    out: list[str] = []
    for piece in _parse(template):
        if isinstance(piece, str):
            out.append(piece)
            continue
        name = piece[0]
        if name not in item:
            raise OperationInputError(
                "missing_field", f"item has no field {name!r} used by {source}"
            )
        out.append(value_text(item[name]))
    return "".join(out)


@lru_cache(maxsize=512)
def _parse(template: str) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    literal: list[str] = []
    i, end = 0, len(template)
    while i < end:
        ch = template[i]
        if ch not in "{}":
            nxt = _next_brace(template, i)
            literal.append(template[i:nxt])
            i = nxt
        elif template.startswith(ch * 2, i):
            literal.append(ch)
            i += 2
        elif ch == "}":
            raise TemplateError("single '}' is not allowed; write '}}' for a literal brace", i)
        else:
            close = template.find("}", i + 1)
            if close < 0:
                raise TemplateError("'{' is never closed; write '{{' for a literal brace", i)
            name = template[i + 1 : close]
            _check_name(name, i)
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append((name,))
            i = close + 1
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def _next_brace(template: str, start: int) -> int:
    positions = [p for p in (template.find("{", start), template.find("}", start)) if p >= 0]
    return min(positions) if positions else len(template)


def _check_name(name: str, offset: int) -> None:
    """Refuse anything but a plain field name, saying what was found."""
    if _is_field_name(name):
        return
    shown = "{" + name + "}"
    if not name:
        why = "an empty placeholder '{}' is not allowed; name an item field, e.g. {content}"
    elif "{" in name:
        why = "'{' inside a placeholder; write '{{' for a literal brace"
    elif "." in name:
        why = f"attribute access {shown} is not allowed; use a plain field name"
    elif "[" in name or "]" in name:
        why = f"index access {shown} is not allowed; use a plain field name"
    elif "!" in name or ":" in name:
        why = f"conversions and format specs like {shown} are not allowed; use {{name}}"
    elif name.isdigit():
        why = f"positional placeholder {shown} is not allowed; name an item field"
    else:
        why = (
            f"{shown} is not a field name (letters, digits, '_' and '-', "
            "starting with a letter or '_')"
        )
    raise TemplateError(why, offset)


def _is_field_name(name: str) -> bool:
    if not name or not (name[0].isalpha() or name[0] == "_"):
        return False
    return all(c.isalnum() or c in "_-" for c in name)
