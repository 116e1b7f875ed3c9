"""Progress bars on a terminal (rich): items done and failed, rate and ETA; batches.

Imported by ``make_progress`` only when stderr is a terminal: rich's console and
progress modules are ~15 ms of imports that a run in CI or a pipe never needs.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.text import Text

from agentflow_jobs.runner import JobReport

__all__ = ["RichProgress", "terminal_bars"]


class _RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.0f}/s" if task.speed else "")


class RichProgress:
    """Progress bars on a terminal: items done/failed, rate and ETA; batch progress."""

    def __init__(self, console: Console) -> None:
        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._failed: dict[str, int] = {}

    def job_started(self, job: str, mode: str, to_send: int | None, total: int | None) -> None:
        if not self._tasks:
            self._bar.start()
        self._failed[job] = 0
        self._tasks[job] = self._bar.add_task(f"{job} ({mode})", total=to_send or None, failed=0)

    def job_counted(self, job: str, to_send: int, total: int) -> None:
        if job in self._tasks:
            self._bar.update(self._tasks[job], total=to_send or None)

    def sending(self, job: str) -> None:
        return None  # the bars drew with rich from the start

    def items_done(self, job: str, completed: int, failed: int) -> None:
        self._failed[job] = self._failed.get(job, 0) + failed
        self._bar.update(self._tasks[job], advance=completed + failed, failed=self._failed[job])

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None:
        if job in self._tasks:
            self._bar.update(
                self._tasks[job], completed=done + failed, total=total or None, failed=failed
            )

    def job_finished(self, report: JobReport) -> None:
        task = self._tasks.pop(report.name, None)
        if task is not None:
            self._bar.remove_task(task)
        if not self._tasks:
            self._bar.stop()


def terminal_bars() -> RichProgress | None:
    """Bars on stderr, or None when rich does not see a terminal there (a dumb one, say)."""
    console = Console(stderr=True)
    return RichProgress(console) if console.is_terminal else None
