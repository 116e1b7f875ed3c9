"""`agentflow-jobs watch`: keep the outputs in step with the specs and their inputs."""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.cli.options import (
    lock_timeout_option,
    mode_option,
    resolve_state,
    spec_paths,
    spec_set_options,
)
from agentflow_jobs.cli.progress import make_progress, stop_on_signals
from agentflow_jobs.cli.reports import load_table, print_reports
from agentflow_jobs.runner import Workspace
from agentflow_jobs.watch import DEFAULT_DEBOUNCE_MS, Watcher


@click.command(name="watch")
@click.option("--once", is_flag=True, help="Run one reconcile and exit (exit code like apply's).")
@click.option(
    "--debounce-ms",
    type=click.IntRange(min=1),
    default=DEFAULT_DEBOUNCE_MS,
    envvar="AGENTFLOW_WATCH_DEBOUNCE_MS",
    show_default=True,
    help="Quiet period after a burst of changes before reconciling.",
)
@mode_option
@lock_timeout_option
@spec_set_options
def command(
    paths: tuple[Path, ...],
    once: bool,
    debounce_ms: int,
    mode: str | None,
    lock_timeout: float,
    state: Path | None,
    root: Path | None,
) -> int:
    """Apply what is out of date, then again whenever specs or their files change
    (default DIR: specs/). Ctrl-C or SIGTERM stops cleanly; a second Ctrl-C aborts."""
    watched = spec_paths(paths)
    state_path = resolve_state(watched, state, root)
    with (
        stop_on_signals() as stop,
        Workspace(state_path, lock_timeout=lock_timeout, command="watch") as workspace,
    ):
        watcher = Watcher(
            watched,
            workspace=workspace,
            root=root,
            mode=mode,
            debounce_ms=debounce_ms,
            progress=make_progress(on_idle=load_table if once else None),
            stop=stop,
        )
        if not once:
            watcher.run()
            return 0
        report = watcher.reconcile(initial=True)
    if report is None:  # an initial reconcile always reports; this keeps mypy honest
        return 0
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    print_reports(report.jobs, title="watch --once")
    return report.exit_code
