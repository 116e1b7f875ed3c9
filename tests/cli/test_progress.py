"""The terminal's progress bar of a job that starts sending before its input is counted:
no total at first, the number to send once the count is through."""

from __future__ import annotations

import io
import os
import sys

import pytest
from rich.console import Console

from agentflow_jobs.cli.bars import RichProgress
from agentflow_jobs.cli.progress import PlainProgress, make_progress
from agentflow_jobs.runner import JobReport


def test_the_bar_gets_its_total_when_the_count_is_through() -> None:
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=True, width=100))
    progress.job_started("reviews", "sync", None, None)
    progress.items_done("reviews", 40, 2)
    (task,) = progress._bar.tasks
    assert (task.total, task.completed) == (None, 42)
    progress.job_counted("reviews", 1_200, 1_300)
    assert (task.total, task.completed) == (1_200, 42)
    progress.job_finished(JobReport(name="reviews", status="applied"))
    assert not progress._bar.tasks


def test_bars_on_a_terminal_log_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert isinstance(make_progress(), RichProgress)
    os.close(leader)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(make_progress(), PlainProgress)
