"""Batch exports: CSV cells are the runner's output cells; json and jsonl carry whole rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflow_jobs.engine.export import export_chunks
from agentflow_jobs.engine.store import BatchStore
from agentflow_jobs.errors import UnprocessableEntityError
from agentflow_jobs.io import csv_cell
from agentflow_jobs.wire import ResultRow

RESULT = {"ok": True, "no": False, "tags": ["a", "b"], "size": 3, "score": 0.5, "note": None}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BatchStore]:
    opened = BatchStore(tmp_path / "s.db")
    yield opened
    opened.close()


def batch_with_rows(store: BatchStore) -> str:
    batch_id, _ = store.create(owner="me", request={"operation": "run"}, items=[{}, {}],
                               model=None, metadata={})
    store.record(batch_id, [
        ResultRow(index=0, id="A", status="completed", result=RESULT, error=None, usage={}),
        ResultRow(index=1, id=None, status="failed", result=None,
                  error={"code": "invalid_output", "message": "bad"}, usage={}),
    ])
    return batch_id


def test_csv_cells_are_the_runner_output_cells(store: BatchStore) -> None:
    text = "".join(export_chunks(store, batch_with_rows(store), "csv"))
    header, done, failed = csv.reader(io.StringIO(text))
    assert header == ["index", "id", "status", *RESULT, "error_code", "error_message"]
    assert done == ["0", "A", "completed", *(csv_cell(v) for v in RESULT.values()), "", ""]
    assert done[3:7] == ["true", "false", '["a","b"]', "3"]
    assert failed == ["1", "", "failed", *[""] * len(RESULT), "invalid_output", "bad"]


def test_json_and_jsonl_carry_whole_rows_in_item_order(store: BatchStore) -> None:
    batch_id = batch_with_rows(store)
    rows = json.loads("".join(export_chunks(store, batch_id, "json")))
    lines = "".join(export_chunks(store, batch_id, "jsonl")).splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert [(r["index"], r["status"]) for r in rows] == [(0, "completed"), (1, "failed")]
    assert rows[0]["result"] == RESULT


def test_another_format_is_a_422_listing_the_formats(store: BatchStore) -> None:
    with pytest.raises(UnprocessableEntityError, match=r"^format: expected one of json, jsonl, csv$"):
        export_chunks(store, batch_with_rows(store), "xml")
