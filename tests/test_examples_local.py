"""The README's main job on a machine with nothing configured: the offline model.

`agentflow-jobs apply specs/examples` with no OPENAI_* variables must write every
example's output from the packaged Gemma model through the built-in `local` profile.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agentflow_jobs.cli import main
from tests.outputs import output_rows

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.usefixtures("offline_model"),
]



def test_examples_apply_on_the_offline_model_with_nothing_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "specs" / "examples", tmp_path / "specs" / "examples")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTFLOW_LOCAL_MODEL", raising=False)
    monkeypatch.setenv("AGENTFLOW_STORE", str(tmp_path / "store.db"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    assert main(["apply", "specs/examples"]) == 0

    out = tmp_path / "specs" / "examples" / "out"
    inputs = {
        "review-sentiment.jsonl": "reviews.jsonl",
        "lead-contacts.csv": "contacts.csv",
        "meeting-summaries.jsonl": "meeting-notes.jsonl",
        "company-segments.jsonl": "companies.csv",
        "feedback-analysis.json": "feedback.jsonl",
    }
    data = tmp_path / "specs" / "examples" / "data"
    for output, source in inputs.items():
        rows = output_rows(out / output)
        assert len(rows) == len(output_rows(data / source)), output
    # the Parquet and SQL-table examples: the same answers, typed
    segments = pq.read_table(out / "company-segments.parquet")
    assert segments.num_rows == len(output_rows(data / "companies.csv"))
    assert str(segments.schema.field("employee_count").type) == "int64"
    with contextlib.closing(sqlite3.connect(out / "reviews.db")) as db:
        labels = [r[0] for r in db.execute("SELECT label FROM review_sentiment")]
    assert len(labels) == len(output_rows(data / "reviews.jsonl"))
    assert set(labels) <= {"positive", "negative", "mixed"}
    for row in output_rows(out / "review-sentiment.jsonl"):
        result = row["result"]
        assert isinstance(result, dict)
        assert result["label"] in {"positive", "negative", "mixed"}
        assert 0.0 <= float(result["confidence"]) <= 1.0
    for row in output_rows(out / "company-segments.jsonl"):
        result = row["result"]
        assert isinstance(result, dict)
        assert result["company_segment"] in {"enterprise", "mid-market", "smb"}
    # what a first run shows must not look broken: whole-sentence summaries, short topics
    for row in output_rows(out / "meeting-summaries.jsonl"):
        assert row["result"]["summary"].rstrip().endswith((".", "!", "?")), row
    for row in output_rows(out / "feedback-analysis.json"):
        topic = row["result"]["topic"]
        assert isinstance(topic, str) and 0 < len(topic.split()) <= 3 and not any(c.isdigit() for c in topic), row
