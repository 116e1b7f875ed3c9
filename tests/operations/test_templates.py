"""The one template parser: plain `{field}` placeholders and literal `{{ }}` only.

The spec validator reports the same errors at their line and column in the spec file
(tests/spec/test_invalid_fixtures.py), so offsets point at the offending character.
"""

from __future__ import annotations

import pytest

from agentflow_jobs.errors import OperationInputError, TemplateError
from agentflow_jobs.operations import render, template_fields
from agentflow_jobs.operations.templates import template_problems


def test_fields_are_listed_once_in_order_of_use() -> None:
    assert template_fields("{title}: {content} ({title}) {user-id} {_x2}") == [
        "title",
        "content",
        "user-id",
        "_x2",
    ]


def test_doubled_braces_are_literal() -> None:
    template = 'Reply as {{"label": ...}} for {content}}}'
    assert template_fields(template) == ["content"]
    assert render(template, {"content": "hi"}) == 'Reply as {"label": ...} for hi}'


def test_render_splices_values_as_text() -> None:
    item = {"a": "x", "n": 3, "f": 1.5, "b": True, "d": {"k": "é"}, "l": [1, 2], "z": None}
    out = render("{a}|{n}|{f}|{b}|{d}|{l}|{z}", item)
    assert out == 'x|3|1.5|true|{"k": "é"}|[1, 2]|'


def test_render_does_not_interpret_braces_inside_values() -> None:
    assert render("{content}", {"content": "{content.__class__} {0}"}) == "{content.__class__} {0}"


def test_missing_field_names_the_field_and_template() -> None:
    with pytest.raises(OperationInputError) as caught:
        render("Hello {name}", {"content": "x"})
    assert caught.value.code == "missing_field"
    assert caught.value.message == "item has no field 'name' used by user_prompt_template"


@pytest.mark.parametrize(
    ("template", "offset", "words"),
    [
        # offsets point at the offending character: the `.`, `[`, `!` or `:` after a good name
        ("ab {content.__init__.__globals__}", 11, "attribute access `.__init__.__globals__`"),
        ("{a.b}", 2, "attribute access"),
        ("x {x[0]}", 4, "index access"),
        ("{0}", 0, "positional"),
        ("{}", 0, "empty placeholder"),
        ("{x!r}", 2, "conversion `!r`"),
        ("{x:>5}", 2, "format spec `:>5`"),
        ("{content", 0, "unclosed `{`"),
        ("oops } here", 5, "single `}`"),
        ("{a{b}", 2, "`{` inside a placeholder"),
        ("{ content }", 0, "not a plain placeholder"),
        ("{9lives}", 0, "not a plain placeholder"),
    ],
)
def test_anything_but_plain_names_is_refused_with_its_offset(
    template: str, offset: int, words: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields(template)
    assert caught.value.offset == offset
    assert words in caught.value.message


def test_hostile_template_never_reaches_python_objects() -> None:
    with pytest.raises(TemplateError):
        render("{content.__init__.__globals__}", {"content": "x"})


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
def test_messages_name_the_offending_part_and_the_fix(template: str, offset: int, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields(template)
    assert caught.value.offset == offset
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{0} {x[0]} {a.b}", [(0, "positional"), (6, "index access"), (13, "attribute access")]),
        ("} {} {x!r} {ok}", [(0, "single `}`"), (2, "empty placeholder"), (7, "conversion")]),
        # a nested brace swallows its whole balanced group; an unclosed one ends the scan
        ("{a{b}} {0} {c", [(2, "`{` inside a placeholder"), (7, "positional"), (11, "unclosed `{`")]),
        ("{a{b} {0}", [(2, "`{` inside a placeholder")]),
        ("fine {content} {{x}}", []),
    ],
)
def test_template_problems_lists_every_bad_placeholder(template: str, expected: list[tuple[int, str]]) -> None:
    problems = template_problems(template)
    assert [p.offset for p in problems] == [offset for offset, _ in expected]
    for problem, (_, words) in zip(problems, expected, strict=True):
        assert words in problem.message


def test_the_first_of_several_problems_is_what_template_fields_raises() -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields("{0} {x[0]}")
    assert caught.value.offset == template_problems("{0} {x[0]}")[0].offset == 0
