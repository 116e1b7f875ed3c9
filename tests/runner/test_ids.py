"""Output and error ids: the input's own id_field value, or null; never a made-up number."""

from __future__ import annotations

import csv
from typing import Any

from tests.runner.conftest import Workspace


def test_an_item_without_its_id_field_gets_a_null_id_that_cannot_clash(
    ws: Workspace, fake_provider: Any
) -> None:
    ws.write_input(
        "reviews.jsonl",
        [
            {"rid": 2, "content": "great a"},
            {"rid": "0", "content": "great b"},
            {"content": "great c"},  # its row number (2) is the first item's real id
            {"rid": None, "content": "great c"},  # same text: one request for both
        ],
    )
    ws.write_spec()
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == [2, "0", None, None]
    assert [r["result"]["label"] for r in ws.output()] == ["positive"] * 4
    assert fake_provider.count == 3


def test_a_null_id_is_an_empty_cell_in_csv(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", [{"rid": "a", "content": "great"}, {"content": "awful"}])
    ws.write_spec(output={"path": "../out/reviews.csv"})
    assert ws.run("apply") == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == ["a", ""]


def test_the_errors_file_has_the_inputs_ids_or_null_and_always_the_line(
    ws: Workspace, fake_provider: Any
) -> None:
    path = ws.root / "data" / "reviews.jsonl"
    path.write_text(
        '{"rid": 7, "content": "poison a"}\n'
        "{oops\n"  # unreadable: no id to give
        '{"content": "poison b"}\n'  # no rid
        '{"rid": 1, "text": "no content"}\n'
        '{"rid": 0, "content": "great"}\n'
    )
    ws.write_spec(execution={"max_failure_rate": 1.0})
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply") == 0
    assert [(e["id"], e["line"]) for e in ws.errors()] == [(7, 1), (None, 2), (None, 3), (1, 4)]
    assert [r["id"] for r in ws.output()] == [0]


def test_without_id_field_the_id_is_the_items_position(ws: Workspace, fake_provider: Any) -> None:
    path = ws.root / "data" / "reviews.jsonl"
    path.write_text('{"content": "great"}\n{oops\n\n{"content": "poison"}\n{"content": "fine"}\n')
    ws.write_spec(input={"id_field": None}, execution={"max_failure_rate": 1.0})
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == [0, 3]
    assert [(e["id"], e["line"]) for e in ws.errors()] == [(1, 2), (2, 4)]
