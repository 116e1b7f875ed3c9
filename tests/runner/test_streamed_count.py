"""A sync apply with nothing waiting for its totals (no budget, mode not ``auto``, no
batches in flight) starts sending with the first item to send and counts the rest of
its input as it sends: the same requests, rows and report as counting first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentflow_jobs.runner import JobReport, apply_jobs
from agentflow_jobs.spec.load import load_specs
from tests.runner.conftest import Workspace, reviews


class Recorder:
    """The progress events apply gives, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def job_started(self, job: str, mode: str, to_send: int | None, total: int | None) -> None:
        self.events.append(("started", mode, to_send, total))

    def job_counted(self, job: str, to_send: int, total: int) -> None:
        self.events.append(("counted", to_send, total))

    def sending(self, job: str) -> None:
        self.events.append(("sending",))

    def items_done(self, job: str, completed: int, failed: int) -> None:
        self.events.append(("done", completed, failed))

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None:
        self.events.append(("batch", done, failed, total))

    def job_finished(self, report: JobReport) -> None:
        self.events.append(("finished", report.status))


def _apply(ws: Workspace, progress: Recorder) -> JobReport:
    report = apply_jobs(load_specs([ws.root / "specs"]), state=ws.state, progress=progress)
    (job,) = report.jobs
    return job


def test_a_sync_apply_sends_before_its_input_is_counted(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(1_200))  # three blocks of the count
    ws.write_spec(execution={"concurrency": 16})
    fake_provider.script(latency_ms=5)
    progress = Recorder()
    job = _apply(ws, progress)
    assert (job.status, job.sent, job.completed, job.cached) == ("applied", 1_200, 1_200, 0)
    assert fake_provider.count == 1_200
    assert [r["id"] for r in ws.output()] == [f"r{i}" for i in range(1_200)]
    kinds = [event[0] for event in progress.events]
    assert progress.events[0] == ("started", "sync", None, None)
    counted = kinds.index("counted")
    assert progress.events[counted] == ("counted", 1_200, 1_200)
    answered_first = sum(event[1] for event in progress.events[:counted] if event[0] == "done")
    assert answered_first > 500  # the first block's items were answered while the rest was read
    assert kinds[-1] == "finished" and kinds.count("sending") == 1


def test_a_display_hears_the_first_window_is_on_its_way_before_any_answer(
    ws: Workspace, fake_provider: Any
) -> None:
    # the quiet moment a display loads what it draws with (cli's PlainProgress.on_idle):
    # every worker's first request is out, none answered yet
    ws.write_input("reviews.jsonl", reviews(40))
    ws.write_spec(execution={"concurrency": 4})
    fake_provider.script(latency_ms=150)
    progress = Recorder()
    assert _apply(ws, progress).status == "applied"
    kinds = [event[0] for event in progress.events]
    assert kinds.count("sending") == 1 and kinds.index("sending") < kinds.index("done")


def _mixed_input(ws: Workspace) -> None:
    """1,000 reviews with 10 duplicates, 5 broken lines and 20 the provider refuses."""
    rows = reviews(1_000)
    for i in range(0, 1_000, 50):
        rows[i]["content"] = f"review {i}: refuse this one"
    lines = [json.dumps(row) for row in rows]
    lines += [json.dumps(rows[i]) for i in range(100, 110)]  # sent once, each
    for at in (7, 300, 650, 900, 999):
        lines.insert(at, '{"rid": "broken", "content": ')
    (ws.root / "data" / "reviews.jsonl").write_text("\n".join(lines) + "\n")


def _mixed_apply(ws: Workspace, fake_provider: Any, mode: str) -> tuple[Any, ...]:
    """An apply of the mixed input after an earlier apply answered its first 300 rows."""
    ws.write_spec(mode=mode, execution={"concurrency": 8, "auto_batch_threshold": 100_000,
                                        "max_failure_rate": 1.0})
    ws.write_input("reviews.jsonl", reviews(300))
    assert ws.run("apply") == 0
    _mixed_input(ws)
    fake_provider.reset()
    fake_provider.script(latency_ms=2)
    fake_provider.script(match="refuse this one", status=400)
    progress = Recorder()
    job = _apply(ws, progress)
    figures = (job.status, job.cached, job.sent, job.total, job.completed, job.failed, job.input_errors)
    return progress.events[0], figures, fake_provider.count, ws.output(), ws.errors()


def test_counting_while_sending_sends_writes_and_reports_as_counting_first(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sync`` sends as it counts; ``auto`` (all under its threshold, so sync too)
    counts first, to choose: the same requests, rows, errors and report."""
    streamed = _mixed_apply(ws, fake_provider, "sync")
    (ws.root / "first").mkdir()
    monkeypatch.chdir(ws.root / "first")
    counted = _mixed_apply(Workspace(ws.root / "first"), fake_provider, "auto")
    assert streamed[0] == ("started", "sync", None, None)
    assert counted[0] == ("started", "sync", 706, 1_015)
    # 1,015 lines: 5 broken; 294 rows answered before and 9 repeats of them (cached);
    # 706 new, of which 20 refused (one in 50, six of them rewritten below r300), sent
    # once each though r100 appears twice: 989 rows and 21 failures written
    assert streamed[1] == counted[1] == ("applied", 303, 706, 1_015, 989, 21, 5)
    assert streamed[2] == counted[2] == 706  # requests the provider received
    assert streamed[3] == counted[3] and len(streamed[3]) == 989
    assert streamed[4] == counted[4] and len(streamed[4]) == 26
