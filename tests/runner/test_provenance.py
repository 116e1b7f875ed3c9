"""include_provenance: every row says which spec, model and run answered it."""

from __future__ import annotations

import csv
import json
from typing import Any

from agentflow_jobs.spec import load_specs
from tests.runner.conftest import Workspace, reviews


def _apply_run_id(ws: Workspace, capsys: Any) -> str:
    capsys.readouterr()
    assert ws.run("apply", "--json") == 0
    run_id: str = json.loads(capsys.readouterr().out)["run_id"]
    return run_id


def test_rows_carry_the_spec_hash_and_the_run_that_answered_them(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    spec = ws.write_spec(output={"path": "../out/reviews.jsonl", "include_provenance": True})
    (loaded,) = load_specs([spec], root=ws.root)
    first = _apply_run_id(ws, capsys)
    rows = ws.output()
    assert [r["provenance"]["run_id"] for r in rows] == [first, first]
    assert [r["provenance"]["spec_hash"] for r in rows] == [loaded.spec_hash] * 2
    assert set(rows[0]["provenance"]) == {
        "job", "model", "spec_hash", "run_id", "mode", "attempts", "usage"
    }
    ws.write_input("reviews.jsonl", reviews(1, start=2), append=True)
    second = _apply_run_id(ws, capsys)
    assert second != first
    # the cached rows were answered by the first run, the new one by the second
    assert [r["provenance"]["run_id"] for r in ws.output()] == [first, first, second]
    ws.write_spec(output={"path": "../out/reviews.csv", "include_provenance": True})
    fake_provider.reset()
    _apply_run_id(ws, capsys)
    assert fake_provider.count == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["_spec_hash"], r["_run_id"]) for r in table] == [
        (loaded.spec_hash, first),
        (loaded.spec_hash, first),
        (loaded.spec_hash, second),
    ]


def test_a_retried_item_names_the_run_that_finally_answered_it(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    rows = reviews(2)
    rows[1]["content"] = "poison"
    ws.write_input("reviews.jsonl", rows)
    ws.write_spec(
        output={"path": "../out/reviews.jsonl", "include_provenance": True},
        execution={"max_failure_rate": 1.0},
    )
    fake_provider.script(match="poison", status=400, times=1)
    first = _apply_run_id(ws, capsys)
    assert ws.run("retry", "reviews", "--json") == 0
    retried = json.loads(capsys.readouterr().out)["run_id"]
    assert [(r["id"], r["provenance"]["run_id"], r["provenance"]["attempts"]) for r in ws.output()] == [
        ("r0", first, 1),
        ("r1", retried, 2),
    ]
