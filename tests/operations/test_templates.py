from __future__ import annotations

import pytest

from agentflow_jobs.operations import OperationInputError, TemplateError, render, template_fields


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
        ("ab {content.__init__.__globals__}", 3, "attribute access"),
        ("{a.b}", 0, "attribute access"),
        ("x {x[0]}", 2, "index access"),
        ("{0}", 0, "positional"),
        ("{}", 0, "empty placeholder"),
        ("{x!r}", 0, "conversions"),
        ("{x:>5}", 0, "format specs"),
        ("{content", 0, "never closed"),
        ("oops } here", 5, "single '}'"),
        ("{a{b}", 0, "inside a placeholder"),
        ("{ content }", 0, "not a field name"),
        ("{9lives}", 0, "not a field name"),
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
