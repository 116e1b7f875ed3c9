"""The terminal's progress bar of a job that starts sending before its input is counted:
no total at first, the number to send once the count is through."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from agentflow_jobs.cli.bars import RichProgress
from agentflow_jobs.cli.progress import PlainProgress, make_progress
from agentflow_jobs.runner import JobReport
from tests.fakes.handles import REPO_ROOT


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


def test_the_first_window_on_its_way_loads_the_summary_tables_modules() -> None:
    # in a fresh process: the log-line display an apply makes (apply_and_report's
    # progress) imports rich's table while the first requests are out, not with the
    # first answers nor after the last one
    probe = (
        "import sys\nfrom agentflow_jobs.cli.progress import make_progress\n"
        "from agentflow_jobs.cli.reports import load_table\n"
        "progress = make_progress(on_idle=load_table)\n"
        "progress.job_started('j', 'sync', None, None)\nprogress.items_done('j', 16, 0)\n"
        "before = 'rich.table' in sys.modules\nprogress.sending('j')\n"
        "print(before, 'rich.table' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "False True"
