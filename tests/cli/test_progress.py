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
from agentflow_jobs.cli.reports import print_reports
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
    # progress) imports what the table draws with while the first requests are out, not
    # with the first answers nor after the last one: printing it then imports nothing
    probe = (
        "import sys\nfrom agentflow_jobs.cli.progress import make_progress\n"
        "from agentflow_jobs.cli.reports import load_table, print_reports\n"
        "from agentflow_jobs.runner import JobReport\n"
        "progress = make_progress(on_idle=load_table)\n"
        "progress.job_started('j', 'sync', None, None)\nprogress.items_done('j', 16, 0)\n"
        "before = 'rich.table' in sys.modules\nprogress.sending('j')\n"
        "loaded = set(sys.modules)\n"
        "print_reports([JobReport(name='j', status='applied', output='out.jsonl')], title='apply')\n"
        "print(before, 'rich.table' in sys.modules, sorted(set(sys.modules) - loaded))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "False True []"


def test_the_summary_prints_a_jobs_words_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # paths and messages are the user's and the provider's text: not markup, not emoji codes
    reports = [
        JobReport(name="a", status="applied", output="out/results[v2].jsonl", message="saw :fire: in 3 rows"),
        JobReport(name="b", status="failed", output="out/a[/b]c.jsonl", message="[bold]not bold[/bold]"),
    ]
    print_reports(reports, title="apply")
    err = capsys.readouterr().err
    assert "out/results[v2].jsonl" in err and "out/a[/b]c.jsonl" in err
    assert "saw :fire: in 3 rows" in err and "\N{FIRE}" not in err and "[bold]not bold[/bold]" in err
