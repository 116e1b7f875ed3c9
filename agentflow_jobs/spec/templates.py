"""Prompt-template checking for job specs: plain ``{field}`` placeholders only.

A template names item fields as ``{field}``; ``{{`` and ``}}`` are literal braces.
Anything Python's ``str.format`` would do beyond a plain name (attribute or index
access, positional or empty fields, conversions, format specs) is refused, because a
template runs over untrusted data and ``{content.__class__}`` is an escape hatch.

The operations layer has the same contract (``operations.templates.template_fields``);
this checker exists so specs can be validated without it, and mirrors its API.
"""

from __future__ import annotations

import re

__all__ = ["TemplateError", "template_fields"]

# the same names operations.templates accepts: a letter or `_`, then letters, digits, `_`, `-`
_IDENT = re.compile(r"[^\W\d][\w-]*\Z")
_PLAIN = "name an item field, like `{content}`"


class TemplateError(ValueError):
    """A template is malformed; ``offset`` is the index in the template where."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order of first use; raise TemplateError."""
    fields: list[str] = []
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char == "}":
            if template.startswith("}}", i):
                i += 2
                continue
            raise TemplateError("single `}` (write `}}` for a literal brace)", i)
        if char != "{":
            i += 1
            continue
        if template.startswith("{{", i):
            i += 2
            continue
        end = _placeholder_end(template, i)
        name = _check_placeholder(template[i + 1 : end], i)
        if name not in fields:
            fields.append(name)
        i = end + 1
    return fields


def _placeholder_end(template: str, start: int) -> int:
    for j in range(start + 1, len(template)):
        if template[j] == "}":
            return j
        if template[j] == "{":
            raise TemplateError(
                "`{` inside a placeholder; nested placeholders are not allowed "
                "(write `{{` for a literal brace)",
                j,
            )
    raise TemplateError("unclosed `{` (write `{{` for a literal brace)", start)


_MARKS = {"!": "conversion", ":": "format spec", ".": "attribute access", "[": "index access"}


def _check_placeholder(body: str, offset: int) -> str:
    shown = "{" + body + "}"
    if not body.strip():
        raise TemplateError(f"empty placeholder `{shown}`; {_PLAIN} (`{{{{}}}}` is a literal `{{}}`)", offset)
    cut = min((body.index(m) for m in _MARKS if m in body), default=len(body))
    head = body[:cut]
    if head.isdigit():
        raise TemplateError(f"positional placeholder `{shown}` is not allowed; {_PLAIN}", offset)
    if not _IDENT.match(head):
        raise TemplateError(
            f"`{shown}` is not a plain placeholder; {_PLAIN} "
            "(write `{{` and `}}` for literal braces, e.g. in JSON examples)",
            offset,
        )
    if cut < len(body):
        what = _MARKS[body[cut]]
        raise TemplateError(
            f"{what} `{body[cut:]}` in `{shown}` is not allowed; use a plain `{{{head}}}`",
            offset + 1 + cut,
        )
    return body
