"""Templates accept plain `{field}` placeholders and literal `{{ }}` only."""

from __future__ import annotations

import pytest

from agentflow_jobs.spec.templates import TemplateError, template_fields


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("Analyze {content}", ["content"]),
        ("{title}: {content} ({title})", ["title", "content"]),
        ('Return {{"label": "x"}} for {content}', ["content"]),
        ("{company-name} {_private}", ["company-name", "_private"]),
        ("no placeholders", []),
    ],
)
def test_plain_placeholders_are_listed_in_order(template: str, fields: list[str]) -> None:
    assert template_fields(template) == fields


@pytest.mark.parametrize(
    ("template", "offset", "fragment"),
    [
        ("x {content.__class__}", 10, "attribute access `.__class__`"),
        ("x {0}", 2, "positional placeholder `{0}`"),
        ("x {x[0]}", 4, "index access `[0]`"),
        ("x {}", 2, "empty placeholder `{}`"),
        ("x {x!r}", 4, "conversion `!r`"),
        ("x {x:>10}", 4, "format spec `:>10`"),
        ("x {content", 2, "unclosed `{`"),
        ("x } y", 2, "single `}`"),
        ("x {a{b}}", 4, "`{` inside a placeholder"),
        ('x {"label": 1}', 2, "write `{{` and `}}` for literal braces"),
    ],
)
def test_anything_else_is_refused_with_its_offset(template: str, offset: int, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields(template)
    assert caught.value.offset == offset
    assert fragment in caught.value.message
