"""What the runner commands report: the summary table on stderr, ``--json`` on stdout.

``apply_and_report`` is the one way ``apply`` and ``retry`` run jobs: under
``stop_on_signals`` with a progress display, then the table, the JSON document and the
exit code of the report. rich is imported when the table prints, not with the command:
a run's start is what a user waits on before anything is sent.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from agentflow_jobs.cli.options import SpecSet
from agentflow_jobs.cli.progress import make_progress, stop_on_signals
from agentflow_jobs.errors import AgentFlowError
from agentflow_jobs.runner import ApplyReport, JobReport, apply_jobs

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "apply_and_report", "finish", "load_table", "os_error", "print_reports", "stderr_console", "usd",
]


def stderr_console() -> Console:
    """stderr; off a terminal wide enough that tables in logs are not cut. Text is
    printed as written: paths, reasons and messages are the user's and the provider's
    words, so ``out/results[v2].jsonl`` keeps its ``[v2]`` (not read as markup, nor
    ``[/x]`` as a markup error) and ``:fire:`` is not an emoji."""
    from rich.console import Console

    return Console(
        stderr=True, width=None if sys.stderr.isatty() else 200, markup=False, emoji=False
    )


def usd(value: float | None) -> str:
    """Dollars as a person reads them; ``unknown`` for no price (never $0)."""
    if value is None:
        return "unknown"
    if value == 0 or value >= 1:
        return f"${value:,.2f}"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


_STATUS_STYLE = {
    "applied": "green",
    "up_to_date": "dim",
    "failed": "red",
    "error": "red",
    "incomplete": "yellow",
    "submitted": "cyan",
    "skipped": "yellow",
    "over_budget": "red",
    "cancelled": "yellow",
}


_REPORT_COLUMNS = (
    "job", "status", "mode", "items", "cached", "sent", "completed", "failed", "tokens", "cost",
    "output",
)
_LEFT = ("job", "status", "mode", "output")


def _report_row(r: JobReport) -> list[str | Text]:
    from rich.text import Text

    return [
        r.name,
        Text(r.status, style=_STATUS_STYLE.get(r.status, "")),
        r.mode,
        str(r.total),
        str(r.cached),
        str(r.sent),
        str(r.completed),
        str(r.failed + r.input_errors),
        str(r.tokens),
        usd(r.cost_usd),
        # a URL (object store, database) is shown as it is, a file relative to here
        os.path.relpath(r.output) if r.output and "://" not in r.output else r.output or "",
    ]


def load_table() -> None:
    """Import what ``print_reports`` draws with (rich's table and console, ~17 ms): a run
    hands this to its progress display, which calls it while the first requests are out
    (``Progress.sending``), rather than leaving it for after the last answer with the
    user waiting. ``rich.table`` alone does not import the console (~10 ms more)."""
    import rich.console
    import rich.table  # noqa: F401


def print_reports(reports: Sequence[JobReport], *, title: str) -> None:
    """The summary table, on stderr, then each job's message and errors file."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in _REPORT_COLUMNS:
        table.add_column(name, justify="left" if name in _LEFT else "right")
    for r in reports:
        table.add_row(*_report_row(r))
    console = stderr_console()
    console.print(table)
    if len(reports) > 1:
        costs = [r.cost_usd for r in reports]
        total = None if None in costs else sum(c or 0.0 for c in costs)
        console.print(f"spent in this run: {usd(total)}", highlight=False)
    for r in reports:
        if r.message:
            console.print(f"{r.name}: {r.message}", highlight=False)
        if r.errors:
            errors = os.path.relpath(r.errors)
            console.print(f"{r.name}: per-item errors in {errors}", highlight=False)


def finish(report: ApplyReport, *, as_json: bool, title: str) -> int:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    print_reports(report.jobs, title=title)
    if report.interrupted:
        click.echo(
            "interrupted: results received so far are saved; run apply again to resume", err=True
        )
    return report.exit_code


def apply_and_report(
    spec_set: SpecSet,
    *,
    title: str,
    as_json: bool,
    mode: str | None,
    job_names: Sequence[str],
    lock_timeout: float,
    force: bool = False,
    detach: bool = False,
    retry: bool = False,
    max_cost_usd: float | None = None,
) -> int:
    """Apply ``spec_set`` (only ``job_names`` when given) and report; the exit code."""
    with stop_on_signals() as stop:
        try:
            report = apply_jobs(
                spec_set.specs,
                state=spec_set.state,
                mode=mode,
                force=force,
                detach=detach,
                job_names=list(job_names) or None,
                retry=retry,
                progress=make_progress(on_idle=load_table),
                stop=stop,
                lock_timeout=lock_timeout,
                max_cost_usd=max_cost_usd,
            )
        except OSError as exc:
            raise os_error(exc) from exc
    return finish(report, as_json=as_json, title=title)


def os_error(exc: OSError) -> AgentFlowError:
    """A file the command could not read or write, said as a sentence, not a traceback."""
    # os.replace(temp, target) names the target second: that is the file the user knows
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    reason = exc.strerror or str(exc)
    return AgentFlowError(f"{name}: {reason}" if name is not None else reason)
