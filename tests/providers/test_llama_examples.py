"""The example jobs (specs/examples) applied through the CLI against llama-cpp-python's
real server with the packaged Gemma 3 270M model, three items each: exit 0, and every
row fits its job's declared shape (labels among the categories, enrich fields of their
types and Parquet columns, JSON objects from the custom run, non-empty summaries, the
SQL table). The server is the session one (``llama_server.py``).

``extract.yaml`` declares its ``output_schema``; without one the server constrains the
reply by its generic JSON grammar only, inside which this 270M model ran on until the
token limit (eight minutes an item on two shared cores). Its nullable strings are
``type: [string, "null"]`` with a ``maxLength``, which llama.cpp's grammar builder drops
on a list of types: the fallback schema is sent one ``anyOf`` branch per type.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from agentflow_jobs.cli import main
from tests.outputs import output_rows
from tests.providers.llama_server import LlamaServer

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
ITEMS = 3


def _trim(data: Path) -> None:
    """Keep the first ITEMS items of every example input (CSV keeps its header)."""
    for path in data.iterdir():
        lines = path.read_text().splitlines(keepends=True)
        keep = ITEMS + 1 if path.suffix == ".csv" else ITEMS
        path.write_text("".join(lines[:keep]))



def _spec(examples: Path, name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((examples / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_example_jobs_apply_with_rows_of_their_shape(
    llama_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = tmp_path / "specs" / "examples"
    shutil.copytree(REPO / "specs" / "examples", examples, ignore=shutil.ignore_patterns("out"))
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    _trim(examples / "data")
    (tmp_path / ".git").mkdir()
    config = tmp_path / "profiles.yaml"
    provider = {"type": "openai", "base_url": llama_server.base_url}
    config.write_text(json.dumps({"profiles": {"llama": {
        "engine": "embedded", "store": str(tmp_path / "store.db"), "provider": provider}}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    monkeypatch.setenv("AGENTFLOW_PROFILE", "llama")

    assert main(["apply", "specs/examples"]) == 0

    out = examples / "out"
    for output in ("review-sentiment.jsonl", "meeting-summaries.jsonl", "company-segments.jsonl", "lead-contacts.csv",
                   "feedback-analysis.json"):
        assert len(output_rows(out / output)) == ITEMS, output
    categories = set(_spec(examples, "classify.yaml")["categories"])
    for row in output_rows(out / "review-sentiment.jsonl"):
        assert row["result"]["label"] in categories and 0 <= row["result"]["confidence"] <= 1, row
    segments = set(_spec(examples, "enrich.yaml")["fields"][0]["valid_values"])
    for row in output_rows(out / "company-segments.jsonl"):
        result = row["result"]
        assert result["company_segment"] in segments, row
        assert result["employee_count"] is None or type(result["employee_count"]) is int, row
    for row in output_rows(out / "feedback-analysis.json"):
        assert isinstance(row["result"], dict) and row["result"], row
    schema = _spec(examples, "extract.yaml")["output_schema"]
    contacts = output_rows(out / "lead-contacts.csv")
    assert len(contacts) == ITEMS and all(list(row) == ["id", *schema["properties"]] for row in contacts)
    for row in contacts:  # CSV cells are text: a null is empty, a number its digits
        assert row["seat_count"] == "" or row["seat_count"].lstrip("-").isdigit(), row
        assert all(len(row[name]) <= 80 for name in ("contact", "title", "company", "timeline")), row
    for row in output_rows(out / "meeting-summaries.jsonl"):
        assert isinstance(row["result"]["summary"], str) and row["result"]["summary"].strip(), row
    # the Parquet and SQL-table twins: the same answers, typed
    table = pq.read_table(out / "company-segments.parquet")
    assert table.num_rows == ITEMS and str(table.schema.field("employee_count").type) == "int64"
    with contextlib.closing(sqlite3.connect(out / "reviews.db")) as db:
        labels = [r[0] for r in db.execute("SELECT label FROM review_sentiment")]
    assert len(labels) == ITEMS and set(labels) <= categories
