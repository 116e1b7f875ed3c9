"""`agentflow-jobs retry JOB`: re-send only the items that failed last time."""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.cli.options import (
    json_option,
    lock_timeout_option,
    max_cost_option,
    mode_option,
    open_spec_set,
    spec_set_options,
)
from agentflow_jobs.cli.reports import apply_and_report

__all__ = ["command"]


@click.command(name="retry")
@click.argument("job")
@mode_option
@lock_timeout_option
@max_cost_option
@json_option("Print the report as JSON on stdout.")
@spec_set_options
def command(
    job: str,
    paths: tuple[Path, ...],
    mode: str | None,
    lock_timeout: float,
    max_cost_usd: float | None,
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Re-send JOB's failed items (and anything not yet answered), then rewrite its output."""
    return apply_and_report(
        open_spec_set(paths, root, state),
        title="retry",
        as_json=as_json,
        mode=mode,
        job_names=[job],
        lock_timeout=lock_timeout,
        retry=True,
        max_cost_usd=max_cost_usd,
    )
