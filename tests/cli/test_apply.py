"""The runner commands through `main(argv)`: exit codes, --json documents, stderr tables."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from agentflow_jobs.cli import main
from tests.runner.conftest import Workspace, reviews

REPO = Path(__file__).parents[2]


def test_apply_json_report_and_summary_table(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec()
    assert main(["apply", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["exit_code"] == 0 and report["interrupted"] is False
    (job,) = report["jobs"]
    assert (job["name"], job["status"], job["sent"], job["completed"]) == (
        "reviews",
        "applied",
        4,
        4,
    )
    assert "applied" in captured.err and "out/reviews.jsonl" in captured.err


def test_unknown_job_is_a_usage_error(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write_input("reviews.jsonl", reviews(1))
    ws.write_spec()
    assert main(["apply", "--job", "nope"]) == 2
    assert "no job named nope" in capsys.readouterr().err


def test_only_the_named_job_runs(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("a.jsonl", reviews(2))
    ws.write_input("b.jsonl", reviews(3))
    ws.write_spec("a")
    ws.write_spec("b")
    assert main(["apply", "--job", "b"]) == 0
    assert fake_provider.count == 3
    assert not (ws.root / "out" / "a.jsonl").exists()


def test_plan_table_says_why(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    assert main(["apply"]) == 0
    ws.write_input("reviews.jsonl", reviews(2, start=3), append=True)
    capsys.readouterr()
    assert main(["plan", "--json"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)["jobs"]
    assert plan["status"] == "changed" and plan["reasons"] == ["input"]
    assert (plan["total"], plan["cached"], plan["to_send"]) == (5, 3, 2)
    assert plan["est_tokens"] and plan["est_tokens"] > 0
    assert main(["plan"]) == 0
    assert "changed" in capsys.readouterr().err


def test_status_table(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()
    assert main(["status"]) == 0
    assert "never" in capsys.readouterr().err
    assert main(["apply"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "applied" in capsys.readouterr().err


def test_explicit_state_file(ws: Workspace, tmp_path: Path) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()
    state = tmp_path / "elsewhere" / "s.db"
    assert main(["apply", "--state", str(state)]) == 0
    assert state.exists() and not ws.state.exists()


def test_examples_apply_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_provider: Any
) -> None:
    shutil.copytree(REPO / "specs" / "examples", tmp_path / "specs" / "examples")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTFLOW_STORE", str(tmp_path / "store.db"))
    assert main(["apply", "specs/examples"]) == 0
    out = tmp_path / "specs" / "examples" / "out"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "company-segments.jsonl",
        "company-segments.parquet",
        "feedback-analysis.json",
        "lead-contacts.csv",
        "meeting-summaries.jsonl",
        "review-sentiment.jsonl",
        "reviews.db",
    ]
    with open(out / "lead-contacts.csv", newline="") as handle:
        assert list(csv.DictReader(handle))
    assert pq.read_table(out / "company-segments.parquet").num_rows == 6
    with contextlib.closing(sqlite3.connect(out / "reviews.db")) as db:
        assert db.execute("SELECT count(*) FROM review_sentiment").fetchone() == (6,)
    sent = fake_provider.count
    assert main(["plan", "specs/examples", "--exit-code"]) == 0
    assert main(["apply", "specs/examples"]) == 0
    assert fake_provider.count == sent


def test_every_table_shows_an_output_path_as_written(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    # brackets in a path are not rich markup: "[v2]" stays, "[/x]" is no markup error
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec(output={"path": "../out/results[v2]/a[/x]b.jsonl"})
    for command in (["plan"], ["apply"], ["status"]):
        assert main(command) == 0
        assert "results[v2]/a[/x]b.jsonl" in capsys.readouterr().err, command
    assert (ws.root / "out" / "results[v2]" / "a[" / "x]b.jsonl").is_file()


def test_a_pasted_key_a_header_cannot_carry_is_a_usage_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fake_provider: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test\u2026")  # an ellipsis copied from a web page
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    assert main(["apply"]) == 2
    err = capsys.readouterr().err
    assert "provider.api_key" in err and "U+2026" in err and "Traceback" not in err
    assert fake_provider.count == 0


def test_items_that_could_not_be_sent_say_why_not_to_retry(
    ws: Workspace, capsys: pytest.CaptureFixture[str], fake_provider: Any
) -> None:
    # a template names a field the JSONL input lacks: no retry can send these items
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec(categories=None, operation="run", user_prompt_template="Classify {txt}")
    assert main(["apply", "--json"]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert fake_provider.count == 0 and "agentflow-jobs retry" not in job["message"]
    assert "3 item(s) could not be sent, which no retry changes: fix the input or the spec" in job["message"]
    assert "(first: line 1: " in job["message"] and "txt" in job["message"]


def test_an_inputs_own_id_is_kept_in_a_csv_output(ws: Workspace) -> None:
    # without id_field the row's id is the item's position: the input's `id` (a SKU) is data
    rows = [{"id": "SKU-77", "content": "good"}, {"id": "SKU-78", "content": "bad"}]
    ws.write_input("reviews.jsonl", rows)
    ws.write_spec(input={"path": "../data/reviews.jsonl", "id_field": None},
                  output={"path": "../out/reviews.csv", "include_input": True})
    assert main(["apply"]) == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        out = list(csv.DictReader(handle))
    assert [(r["id"], r["input.id"], r["content"]) for r in out] == [("0", "SKU-77", "good"), ("1", "SKU-78", "bad")]
    # with id_field: id it is the row's id, said once
    ws.write_spec(input={"path": "../data/reviews.jsonl", "id_field": "id"},
                  output={"path": "../out/reviews.csv", "include_input": True})
    assert main(["apply"]) == 0
    with open(ws.root / "out" / "reviews.csv", newline="") as handle:
        out = list(csv.DictReader(handle))
    assert [r["id"] for r in out] == ["SKU-77", "SKU-78"] and "input.id" not in out[0]
