"""Torn and broken files: a clear, located error or a clean recovery, never silent loss
and never a traceback (DESIGN.md §5, invariants 3 to 5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentflow_jobs.cli import main
from tests.fakes.handles import FakeProvider
from tests.reliability import scenarios
from tests.reliability.harness import Project, review_rows


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_half_written_last_jsonl_line_is_one_located_item_error(
        project: Project, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider) -> None:
    project.write_input(review_rows(20), tail='{"rid": "r20", "content": "half wri')
    project.write_spec(execution={"max_failure_rate": 0.5})
    code, text = run(capsys, "apply")
    assert code == 0, text
    assert project.output_ids() == [f"r{i}" for i in range(20)]
    [error] = project.error_rows()
    assert error["line"] == 21 and error["code"] == "invalid_json", error
    assert fake_provider.count == 20


def test_a_half_written_last_csv_row_is_one_located_item_error(
        project: Project, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider) -> None:
    path = project.root / "data" / "reviews.csv"
    path.write_text("rid,content\n" + "".join(f"r{i},review {i} is great\n" for i in range(5))
                    + 'r5,"half a quoted re')
    project.write_spec(input={"path": "../data/reviews.csv", "id_field": "rid"},
                       execution={"max_failure_rate": 0.5})
    code, text = run(capsys, "apply")
    assert code == 0, text
    assert project.output_ids() == [f"r{i}" for i in range(5)]
    [error] = project.error_rows()
    assert error["line"] == 7, error
    assert fake_provider.count == 5


def test_on_error_fail_names_the_torn_line_and_writes_nothing(
        project: Project, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider) -> None:
    project.write_input(review_rows(20), tail='{"rid": "r20", "content": "half wri')
    project.write_spec(input={"path": "../data/reviews.jsonl", "id_field": "rid", "on_error": "fail"})
    code, text = run(capsys, "apply")
    assert code == 1, text
    assert "reviews.jsonl:21" in text
    assert "Traceback" not in text
    assert not project.output_path.exists()


def _corrupt(state: Path, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    data = state.read_bytes()
    if how == "truncated":
        state.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        state.write_bytes(b"not a database at all\n" * 50)
    elif how == "zeroed":
        state.write_bytes(data[:100] + b"\0" * (len(data) - 100))
    elif how == "empty":
        state.write_bytes(b"")
    elif how == "newer":
        with sqlite3.connect(state) as db:
            db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    elif how == "directory":
        state.unlink()
        state.mkdir()


@pytest.mark.parametrize("how", ["truncated", "garbage", "zeroed", "newer", "directory"])
def test_a_broken_state_file_is_exit_5_naming_it(
        project: Project, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider,
        how: str) -> None:
    project.write_input(review_rows(30))
    project.write_spec()
    assert run(capsys, "apply")[0] == 0
    before = project.output_path.read_bytes()
    sent = fake_provider.count
    _corrupt(project.state, how)
    for command in (["apply"], ["plan"], ["status"]):
        code, text = run(capsys, *command)
        assert code == 5, (command, text)
        assert "state" in text and "Traceback" not in text, text
    assert project.output_path.read_bytes() == before
    assert fake_provider.count == sent


def test_an_empty_state_file_is_started_afresh_or_refused(
        project: Project, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider) -> None:
    project.write_input(review_rows(10))
    project.write_spec()
    assert run(capsys, "apply")[0] == 0
    _corrupt(project.state, "empty")
    code, text = run(capsys, "apply")
    assert code in (0, 5), text
    assert "Traceback" not in text
    if code == 0:
        assert project.output_ids() == [f"r{i}" for i in range(10)]


def test_a_full_disk_is_a_clear_error_then_a_clean_recovery(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    figures = scenarios.full_disk(tmp_path, fake_provider, items=150)
    assert figures["ok"], figures
    assert figures["requests"] <= 150 + 128, figures
