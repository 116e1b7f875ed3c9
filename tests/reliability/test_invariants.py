"""Crash and fault invariants the runner tests do not already pin down: a CSV output and
its errors file survive a crash mid-write byte for byte, a chunk is never submitted
twice, and a provider fault storm ends every item completed or failed with its code
(the code of the very fault a targeted row was given)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.fakes.handles import FakeProvider
from tests.fakes.kinds import KINDS
from tests.reliability import scenarios
from tests.reliability.harness import Project, review_rows


def test_csv_output_and_errors_file_survive_a_crash_mid_write(
        project: Project, fake_provider: FakeProvider) -> None:
    rows = review_rows(40)
    project.write_input(rows, tail="this line is not json\n")
    project.write_spec(output={"path": "../out/reviews.csv", "format": "csv",
                               "errors_path": "../out/reviews.errors.jsonl"},
                       execution={"max_failure_rate": 0.5})
    first = project.run()
    assert first.code == 0, first.stderr
    out_dir = project.root / "out"
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert set(before) == {"reviews.csv", "reviews.errors.jsonl"}
    project.write_input([*rows, *review_rows(5, start=40)], tail="still not json\n")
    crashed = project.run(AGENTFLOW_CRASH_AT="mid_output_write")
    assert crashed.code == 137, crashed.stderr
    assert {p.name: p.read_bytes() for p in out_dir.iterdir() if p.name in before} == before
    resumed = project.run()
    assert resumed.code == 0, resumed.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["reviews.csv", "reviews.errors.jsonl"]
    lines = (out_dir / "reviews.csv").read_text().splitlines()
    assert len(lines) == 1 + 45 and lines[-1].startswith("r44,")
    [error] = [json.loads(line) for line in (out_dir / "reviews.errors.jsonl").read_text().splitlines()]
    assert error["line"] == 46
    assert fake_provider.count == 45


def _batches(store: Path) -> int:
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT count(*) FROM batches").fetchone()[0])


def test_a_chunk_is_never_submitted_twice_across_a_crash(
        project: Project, fake_provider: FakeProvider) -> None:
    project.write_input(review_rows(90))
    project.write_spec(mode="batch", execution={"batch_size": 30})
    crashed = project.run(AGENTFLOW_CRASH_AT="after_submit:2")
    assert crashed.code == 137, crashed.stderr
    assert _batches(project.store) == 2
    resumed = project.run()
    assert resumed.code == 0, resumed.stderr
    assert project.output_ids() == [f"r{i}" for i in range(90)]
    assert _batches(project.store) == 3
    assert fake_provider.count == 90
    again = project.run()
    assert again.code == 0 and _batches(project.store) == 3 and fake_provider.count == 90


def test_a_provider_fault_storm_ends_every_item_with_a_fitting_code(
        tmp_path: Path, fake_provider: FakeProvider) -> None:
    figures = scenarios.provider_storm(tmp_path, fake_provider, items=40, copies=1)
    assert figures["ok"], figures
    assert figures["seconds"] < figures["bound_s"]
    assert figures["items"] == 40 + len(scenarios.TARGETED)
    assert figures["completed"] + figures["failed"] == figures["items"]
    # each targeted row ended with the code of the fault it was given, not just any code
    ended = {name: verdict["got"] for name, verdict in figures["targeted"].items()}
    assert ended["429"] == ["rate_limited"] and ended["hang"] == ["timeout"], ended
    assert ended["truncated"] == ["invalid_output"] and ended["400"] == ["bad_request"], ended
    assert ended["once-500"] == ["completed"] and ended["once-truncated"] == ["completed"], ended
    assert figures["targeted_ok"] == figures["targeted_total"], figures["targeted"]


@pytest.mark.parametrize("provider_kind", KINDS, indirect=True)
def test_a_native_chunk_never_gets_a_second_provider_batch_across_crashes(
        tmp_path: Path, chat_fake: FakeProvider) -> None:
    """Invariant 8 on the batch/native configuration: a kill between the provider's create
    and its record, in the second of three chunks, then a kill while polling."""
    chat_fake.batch_script(validating_s=0.1)
    native = {"batch": "native", "batch_poll_interval": 0.02, "batch_poll_max": 0.1}
    project = Project(tmp_path / "native", scenarios.provider_block(chat_fake, **native))
    project.write_input(review_rows(90))
    project.write_spec(mode="batch", execution={"batch_size": 30})
    for point in ("native_after_create:2", "native_polling"):
        crashed = project.run(AGENTFLOW_CRASH_AT=point)
        assert crashed.code == 137, crashed.stderr
    resumed = project.run()
    assert resumed.code == 0, resumed.stderr
    assert project.output_ids() == [f"r{i}" for i in range(90)]
    stats = chat_fake.batch_stats()
    assert stats["batches_created"] == 3 and stats["duplicate_chunks"] == 0
    assert stats["lines_run"] == 90 and chat_fake.count == 0
