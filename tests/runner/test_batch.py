"""Batch mode: chunks as batches, recorded ids, detach and collect, cancel."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tests.runner.conftest import Workspace, reviews


def _batch_rows(ws: Workspace) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(ws.state)
    try:
        return list(db.execute("SELECT batch_id, status, total FROM batches ORDER BY seq"))
    finally:
        db.close()


def test_batch_mode_splits_into_batches_of_batch_size(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(25))
    ws.write_spec(mode="batch", execution={"batch_size": 10})
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == [f"r{i}" for i in range(25)]
    assert [(status, total) for _, status, total in _batch_rows(ws)] == [
        ("collected:completed", 10),
        ("collected:completed", 10),
        ("collected:completed", 5),
    ]
    assert fake_provider.count == 25


def test_answers_are_shared_across_sync_and_batch_modes(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(10))
    ws.write_spec(mode="sync")
    assert ws.run("apply") == 0
    ws.write_input("reviews.jsonl", reviews(5, start=10), append=True)
    fake_provider.reset()
    assert ws.run("apply", "--mode", "batch") == 0
    assert fake_provider.count == 5
    assert len(ws.output()) == 15


def test_auto_mode_picks_batch_above_the_threshold(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(6))
    ws.write_spec(mode="auto", execution={"auto_batch_threshold": 5})
    assert ws.run("apply", "--json") == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["mode"] == "batch"


def test_detach_submits_and_a_later_apply_collects(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(12))
    ws.write_spec(mode="batch", execution={"batch_size": 5})
    assert ws.run("apply", "--detach", "--json") == 0
    report = json.loads(capsys.readouterr().out)["jobs"][0]
    assert report["status"] == "submitted" and report["batches"] == 3
    assert all(batch_id for batch_id, _, _ in _batch_rows(ws))
    assert ws.run("plan", "--json") == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["status"] == "running"
    assert ws.run("status", "--json") == 0
    in_flight = json.loads(capsys.readouterr().out)["jobs"][0]["batches_in_flight"]
    assert [b["items"] for b in in_flight] == [5, 5, 2]
    assert all(b["batch_id"].startswith("batch_") for b in in_flight)
    assert ws.run("apply") == 0
    assert len(ws.output()) == 12
    assert fake_provider.count == 12
    assert all(status == "collected:completed" for _, status, _ in _batch_rows(ws))


def test_cancel_records_what_finished(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(6))
    ws.write_spec(mode="batch")
    fake_provider.script(latency_ms=300)
    assert ws.run("apply", "--detach") == 0
    before = fake_provider.count
    assert ws.run("cancel", "reviews") == 0
    assert fake_provider.count == before  # cancelling sends nothing
    assert [status for _, status, _ in _batch_rows(ws)] == ["collected:cancelled"]
    finished = len(ws.output()) if (ws.root / "out" / "reviews.jsonl").exists() else 0
    assert finished < 6
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert len(ws.output()) == 6
    assert fake_provider.count == 6 - finished  # what the cancelled batch finished is kept


def test_a_batch_the_service_forgot_is_sent_again(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec(mode="batch")
    fake_provider.script(latency_ms=200)
    assert ws.run("apply", "--detach") == 0
    for leftover in ws.root.glob("store.db*"):
        leftover.unlink()
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output()] == [f"r{i}" for i in range(4)]
    assert [status for _, status, _ in _batch_rows(ws)] == ["collected:lost", "collected:completed"]


def test_status_after_cancel_says_cancelled(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(6))
    ws.write_spec(mode="batch")
    fake_provider.script(latency_ms=300)
    assert ws.run("apply", "--detach") == 0
    capsys.readouterr()
    assert ws.run("cancel", "reviews", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert ws.run("status", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)["jobs"]
    assert row["last_status"] == "cancelled" and row["batches_in_flight"] == []
