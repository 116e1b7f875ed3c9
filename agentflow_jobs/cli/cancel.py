"""`agentflow-jobs cancel JOB`: cancel its in-flight batches and keep what finished."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentflow_jobs.cli.options import (
    json_option,
    lock_timeout_option,
    open_spec_set,
    spec_set_options,
)
from agentflow_jobs.cli.reports import os_error, print_reports
from agentflow_jobs.runner import cancel_job

__all__ = ["command"]


@click.command(name="cancel")
@click.argument("job")
@lock_timeout_option
@json_option("Print the report as JSON on stdout.")
@spec_set_options
def command(
    job: str,
    paths: tuple[Path, ...],
    lock_timeout: float,
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Cancel JOB's batches in flight; finished rows are recorded and written."""
    spec_set = open_spec_set(paths, root, state)
    try:
        report = cancel_job(
            spec_set.specs, job, state=spec_set.state, lock_timeout=lock_timeout
        )
    except OSError as exc:  # the finished rows are written to the job's output
        raise os_error(exc) from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    print_reports([report], title="cancel")
    return 0
