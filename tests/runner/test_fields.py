"""Fields the spec names: messages use the user's field names; a CSV header that lacks one
stops the job before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.runner.conftest import Workspace


def _csv(ws: Workspace, text: str) -> Path:
    path = ws.root / "data" / "reviews.csv"
    path.write_text(text)
    return path


def test_an_empty_content_value_names_the_users_field(ws: Workspace, fake_provider: Any) -> None:
    _csv(ws, 'rid,text\n1,great\n2,""\n3,"   "\n4,awful\n')
    ws.write_spec(
        input={"path": "../data/reviews.csv", "content_field": "text"},
        execution={"max_failure_rate": 1.0},
    )
    assert ws.run("apply") == 0
    assert [(e["id"], e["code"], e["message"]) for e in ws.errors()] == [
        ("2", "empty_content", "line 3: item field 'text' is empty"),
        ("3", "empty_content", "line 4: item field 'text' is empty"),
    ]
    assert [r["id"] for r in ws.output()] == ["1", "4"]
    assert fake_provider.count == 2  # the empty ones were never sent


def test_a_null_content_value_in_jsonl_is_empty_and_named(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input(
        "reviews.jsonl",
        [{"rid": "a", "text": "great"}, {"rid": "b", "text": None}, {"rid": "c", "text": ""}],
    )
    ws.write_spec(input={"content_field": "text"}, execution={"max_failure_rate": 1.0})
    assert ws.run("apply") == 0
    assert [e["message"] for e in ws.errors()] == [
        "line 2: item field 'text' (the content field) is null",
        "line 3: item field 'text' is empty",
    ]
    assert fake_provider.count == 1


def test_a_missing_jsonl_field_lists_the_fields_the_item_has(
    ws: Workspace, fake_provider: Any
) -> None:
    ws.write_input("reviews.jsonl", [{"rid": "a", "text": "great"}, {"rid": "b", "body": "x"}])
    ws.write_spec(input={"content_field": "text"}, execution={"max_failure_rate": 1.0})
    assert ws.run("apply") == 0
    (error,) = ws.errors()
    assert (error["id"], error["code"]) == ("b", "missing_field")
    assert error["message"] == (
        "line 2: no field 'text' (the content field); the item has 'rid', 'body'"
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"input": {"content_field": "body"}}, "'body' (input.content_field)"),
        ({"input": {"content_field": "text", "id_field": "ID"}}, "'ID' (input.id_field)"),
        (
            {
                "operation": "run",
                "categories": None,
                "user_prompt_template": "Title: {title}\n{content}",
                "input": {"content_field": "text"},
            },
            "'title' (a prompt template)",
        ),
    ],
    ids=["content_field", "id_field", "template_field"],
)
def test_a_field_missing_from_the_csv_header_stops_plan_and_apply_before_sending(
    ws: Workspace,
    fake_provider: Any,
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, Any],
    named: str,
) -> None:
    path = _csv(ws, "rid,text\n1,great\n2,awful\n")
    overrides["input"] = {"path": "../data/reviews.csv", "id_field": "rid", **overrides["input"]}
    ws.write_spec(**overrides)
    expected = f"{path}:1: the header has no column {named}; its columns are: 'rid', 'text'"
    assert ws.run("plan") == 1
    assert expected in capsys.readouterr().err
    assert ws.run("apply", "--json") == 1
    captured = capsys.readouterr()
    (job,) = json.loads(captured.out)["jobs"]
    assert (job["status"], job["message"], job["sent"]) == ("error", expected, 0)
    assert "retry" not in captured.err
    assert fake_provider.count == 0
    assert not (ws.root / "out").exists()


def test_fixing_the_spec_after_a_header_error_runs_the_job(
    ws: Workspace, fake_provider: Any
) -> None:
    _csv(ws, "rid,text\n1,great\n2,awful\n")
    ws.write_spec(input={"path": "../data/reviews.csv", "content_field": "body"})
    assert ws.run("apply") == 1
    ws.write_spec(input={"path": "../data/reviews.csv", "content_field": "text"})
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == ["1", "2"]
    assert fake_provider.count == 2


def test_a_csv_with_a_header_and_no_rows_is_an_empty_job_not_an_error(
    ws: Workspace, fake_provider: Any
) -> None:
    _csv(ws, "id\n")  # e.g. an upstream job's CSV output with no rows yet
    ws.write_spec(input={"path": "../data/reviews.csv", "content_field": "text"})
    assert ws.run("apply") == 0
    assert ws.output() == []
