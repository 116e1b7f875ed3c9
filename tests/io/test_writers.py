"""Atomic writers: the target is the old file or the new one, never half of one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agentflow_jobs.errors import OutputError
from agentflow_jobs.io import AtomicFile, write_rows


def test_jsonl_json_and_csv_rows(tmp_path: Path) -> None:
    rows = [{"id": 0, "label": "a", "tags": ["x"]}, {"id": 1, "label": None, "tags": []}]
    write_rows(tmp_path / "o.jsonl", "jsonl", iter(rows))
    write_rows(tmp_path / "o.json", "json", iter(rows))
    write_rows(tmp_path / "o.csv", "csv", iter(rows), columns=["id", "label", "tags"])
    assert [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()] == rows
    assert json.loads((tmp_path / "o.json").read_text()) == rows
    with open(tmp_path / "o.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["id", "label", "tags"],
            ["0", "a", '["x"]'],
            ["1", "", "[]"],
        ]


def test_empty_json_output_is_an_empty_array(tmp_path: Path) -> None:
    write_rows(tmp_path / "o.json", "json", iter([]))
    assert json.loads((tmp_path / "o.json").read_text()) == []


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "o.jsonl"
    target.write_text("old\n")

    def rows() -> object:
        yield {"id": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_rows(target, "jsonl", rows())  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


def test_atomic_file_creates_parent_folders(tmp_path: Path) -> None:
    with AtomicFile(tmp_path / "a" / "b" / "o.txt") as out:
        out.handle.write("hi")
    assert (tmp_path / "a" / "b" / "o.txt").read_text() == "hi"


def test_atomic_file_without_make_parents_leaves_a_missing_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AtomicFile(tmp_path / "nodir" / "o.txt", make_parents=False)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_output_format_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="unknown output format 'xml'"):
        write_rows(tmp_path / "o.xml", "xml", iter([{"id": 1}]))
    assert list(tmp_path.iterdir()) == []
