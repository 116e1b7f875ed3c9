"""Prompt templates: plain ``{field}`` placeholders naming item fields, nothing more.

A placeholder is ``{name}`` where ``name`` starts with a letter or ``_`` and continues
with letters, digits, ``_`` or ``-``; ``{{`` and ``}}`` are literal braces. Everything
``str.format`` would also accept — ``{a.b}``, ``{x[0]}``, ``{0}``, ``{}``, ``{x!r}``,
``{x:>5}`` — is refused with a ``TemplateError`` whose offset points at the offending
character, because attribute and index access on item values would let a template reach
into Python objects (``{content.__init__.__globals__}``). Rendering never calls
``str.format``: it splices item values into the parsed pieces.

This is the one template parser: the spec validator reports every ``TemplateError`` of
``template_problems`` at its line and column in the spec file, so one run shows them all;
operations refuse the request with the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from agentflow_jobs.errors import OperationInputError, TemplateError
from agentflow_jobs.operations.base import value_text

__all__ = ["render", "template_fields", "template_problems"]

_PLAIN = "name an item field, like `{content}`"
_MARKS = {"!": "conversion", ":": "format spec", ".": "attribute access", "[": "index access"}


# A parsed template: literal text (str) and field names (tuple of one str), in order.
Piece = str | tuple[str]


def template_fields(template: str) -> list[str]:
    """The distinct field names ``template`` uses, in order of first use."""
    seen: dict[str, None] = {}
    for piece in _parse(template):
        if isinstance(piece, tuple):
            seen.setdefault(piece[0], None)
    return list(seen)


def template_problems(template: str) -> list[TemplateError]:
    """Every bad placeholder or stray brace in ``template``, in order; empty when it is fine."""
    return [piece for piece in _scan(template) if isinstance(piece, TemplateError)]


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
    for piece in _scan(template):
        if isinstance(piece, TemplateError):
            raise piece
        if isinstance(piece, str):
            literal.append(piece)
            continue
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(piece)
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def _scan(template: str) -> Iterator[Piece | TemplateError]:
    """Literal text, placeholders and errors in order; the scan goes on past an error so
    a user sees every one of them at once."""
    i, end = 0, len(template)
    while i < end:
        ch = template[i]
        if ch not in "{}":
            nxt = _next_brace(template, i)
            yield template[i:nxt]
            i = nxt
        elif template.startswith(ch * 2, i):
            yield ch
            i += 2
        elif ch == "}":
            yield TemplateError("single `}` (write `}}` for a literal brace)", i)
            i += 1
        else:
            piece, i = _open_brace(template, i)
            yield piece


def _open_brace(template: str, start: int) -> tuple[Piece | TemplateError, int]:
    """What the ``{`` at ``start`` opens, and where the scan goes on from."""
    close = template.find("}", start + 1)
    nested = template.find("{", start + 1, close if close >= 0 else len(template))
    if nested >= 0:
        message = "`{` inside a placeholder; nested placeholders are not allowed (write `{{` for a literal brace)"
        return TemplateError(message, nested), _group_end(template, start)
    if close < 0:
        return TemplateError("unclosed `{` (write `{{` for a literal brace)", start), len(template)
    try:
        return (_check_placeholder(template[start + 1 : close], start),), close + 1
    except TemplateError as error:
        return error, close + 1


def _next_brace(template: str, start: int) -> int:
    positions = [p for p in (template.find("{", start), template.find("}", start)) if p >= 0]
    return min(positions) if positions else len(template)


def _group_end(template: str, start: int) -> int:
    """Just past the ``}`` balancing the ``{`` at ``start`` (the end if none does): a
    nested group is one mistake, not one per brace."""
    depth = 0
    for i in range(start, len(template)):
        depth += {"{": 1, "}": -1}.get(template[i], 0)
        if depth == 0:
            return i + 1
    return len(template)


def _check_placeholder(body: str, offset: int) -> str:
    """``body`` if it is a plain field name; else say what was found, pointing at it."""
    shown = "{" + body + "}"
    if not body.strip():
        raise TemplateError(
            f"empty placeholder `{shown}`; {_PLAIN} (`{{{{}}}}` is a literal `{{}}`)", offset
        )
    cut = min((body.index(m) for m in _MARKS if m in body), default=len(body))
    head = body[:cut]
    if head.isdigit():
        raise TemplateError(f"positional placeholder `{shown}` is not allowed; {_PLAIN}", offset)
    if not _is_field_name(head):
        raise TemplateError(
            f"`{shown}` is not a plain placeholder; {_PLAIN} "
            "(write `{{` and `}}` for literal braces, e.g. in JSON examples)",
            offset,
        )
    if cut < len(body):
        # point at the `.`, `[`, `!` or `:` itself: the name before it is fine
        raise TemplateError(
            f"{_MARKS[body[cut]]} `{body[cut:]}` in `{shown}` is not allowed; "
            f"use a plain `{{{head}}}`",
            offset + 1 + cut,
        )
    return body


def _is_field_name(name: str) -> bool:
    if not name or not (name[0].isalpha() or name[0] == "_"):
        return False
    return all(c.isalnum() or c in "_-" for c in name)
