"""`agentflow-jobs apply`: make outputs match the specs, sending only what changed.

Also home of what plan/status/cancel/retry share: the spec-set options, state-path
resolution, progress display and the summary table (all output goes to stderr;
stdout is reserved for ``--json``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import structlog
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
from rich.table import Table
from rich.text import Text

from agentflow_jobs.runner import ApplyReport, JobReport, apply_jobs, default_state_path

__all__ = [
    "PlainProgress",
    "RichProgress",
    "command",
    "load_job_specs",
    "make_progress",
    "print_reports",
    "resolve_state",
    "spec_set_options",
    "stderr_console",
    "stop_on_signals",
]

F = TypeVar("F", bound=Callable[..., Any])
log = structlog.get_logger()


def spec_set_options(func: F) -> F:
    """PATH arguments plus --state / --root, shared by the runner commands."""
    func = click.option(
        "--root",
        type=click.Path(path_type=Path),
        default=None,
        help="Workspace root (default: nearest folder with .git, else cwd).",
    )(func)
    func = click.option(
        "--state",
        "state",
        type=click.Path(path_type=Path),
        default=None,
        envvar="AGENTFLOW_STATE",
        help="State file (default: .agentflow/state.db next to the specs folder).",
    )(func)
    return func


def load_job_specs(paths: Sequence[Path], root: Path | None) -> list[Any]:
    from agentflow_jobs.spec.validate import load_specs

    return list(load_specs(list(paths), root=root))


def resolve_state(paths: Sequence[Path], state: Path | None) -> Path:
    """``--state``, else ``$AGENTFLOW_STATE`` (via click), else next to the first PATH."""
    return state if state is not None else default_state_path(paths[0])


def default_paths(paths: Sequence[Path]) -> list[Path]:
    return list(paths) or [Path("specs")]


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the stop event (finish in-flight work); a second one aborts."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping: finishing requests in flight (Ctrl-C again to abort)", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class PlainProgress:
    """Log lines (for CI and pipes): one on start, at most one per second, one at the end."""

    def __init__(self) -> None:
        self._last = 0.0
        self._counts: dict[str, list[float]] = {}

    def job_started(self, job: str, mode: str, to_send: int, total: int) -> None:
        self._counts[job] = [0, 0, to_send, time.monotonic()]
        log.info("job started", job=job, mode=mode, to_send=to_send, items=total)

    def items_done(self, job: str, completed: int, failed: int) -> None:
        counts = self._counts.setdefault(job, [0, 0, 0, time.monotonic()])
        counts[0] += completed
        counts[1] += failed
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            done = counts[0] + counts[1]
            rate = done / max(now - counts[3], 1e-6)
            eta = (counts[2] - done) / rate if rate else None
            log.info(
                "progress",
                job=job,
                done=int(counts[0]),
                failed=int(counts[1]),
                total=int(counts[2]),
                rate=round(rate, 1),
                eta_s=eta and round(eta),
            )

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            log.info("batch progress", job=job, done=done, failed=failed, total=total)

    def job_finished(self, report: JobReport) -> None:
        log.info(
            "job finished",
            job=report.name,
            status=report.status,
            sent=report.sent,
            completed=report.completed,
            failed=report.failed + report.input_errors,
        )


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

    def job_started(self, job: str, mode: str, to_send: int, total: int) -> None:
        if not self._tasks:
            self._bar.start()
        self._failed[job] = 0
        self._tasks[job] = self._bar.add_task(f"{job} ({mode})", total=to_send or None, failed=0)

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


def stderr_console() -> Console:
    """stderr; off a terminal wide enough that tables in logs are not cut."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def make_progress() -> PlainProgress | RichProgress:
    console = Console(stderr=True)
    return RichProgress(console) if console.is_terminal else PlainProgress()


_STATUS_STYLE = {
    "applied": "green",
    "up_to_date": "dim",
    "failed": "red",
    "error": "red",
    "incomplete": "yellow",
    "submitted": "cyan",
    "skipped": "yellow",
}


def print_reports(reports: Sequence[JobReport], *, title: str) -> None:
    """The summary table, on stderr."""
    table = Table(title=title, title_justify="left")
    for name in (
        "job",
        "status",
        "mode",
        "items",
        "cached",
        "sent",
        "completed",
        "failed",
        "tokens",
        "output",
    ):
        table.add_column(
            name, justify="right" if name not in ("job", "status", "mode", "output") else "left"
        )
    for r in reports:
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.name,
            f"[{style}]{r.status}[/]" if style else r.status,
            r.mode,
            str(r.total),
            str(r.cached),
            str(r.sent),
            str(r.completed),
            str(r.failed + r.input_errors),
            str(r.tokens),
            os.path.relpath(r.output) if r.output else "",
        )
    console = stderr_console()
    console.print(table)
    for r in reports:
        if r.message:
            console.print(f"{r.name}: {r.message}", markup=False, highlight=False)
        if r.errors:
            console.print(
                f"{r.name}: per-item errors in {os.path.relpath(r.errors)}",
                markup=False,
                highlight=False,
            )


def finish(report: ApplyReport, *, as_json: bool, title: str) -> int:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    print_reports(report.jobs, title=title)
    if report.interrupted:
        click.echo(
            "interrupted: results received so far are saved; run apply again to resume", err=True
        )
    return report.exit_code


@click.command(name="apply")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--job", "job_names", multiple=True, help="Apply only this job (repeatable).")
@click.option(
    "--mode",
    type=click.Choice(["sync", "batch", "auto"]),
    default=None,
    help="Override the specs' mode.",
)
@click.option("--force", is_flag=True, help="Send every item again, ignoring the ledger.")
@click.option("--detach", is_flag=True, help="Batch mode: submit and exit; a later apply collects.")
@click.option(
    "--lock-timeout",
    type=float,
    default=0.0,
    envvar="AGENTFLOW_LOCK_TIMEOUT",
    show_default=True,
    help="Seconds to wait for another apply to release the state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@spec_set_options
def command(
    paths: tuple[Path, ...],
    job_names: tuple[str, ...],
    mode: str | None,
    force: bool,
    detach: bool,
    lock_timeout: float,
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Make the outputs match the job specs (default PATH: specs/)."""
    spec_paths = default_paths(paths)
    specs = load_job_specs(spec_paths, root)
    with stop_on_signals() as stop:
        report = apply_jobs(
            specs,
            state=str(resolve_state(spec_paths, state)),
            mode=mode,
            force=force,
            detach=detach,
            job_names=list(job_names) or None,
            progress=make_progress(),
            stop=stop,
            lock_timeout=lock_timeout,
        )
    return finish(report, as_json=as_json, title="apply")
