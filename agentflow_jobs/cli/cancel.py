"""`agentflow-jobs cancel JOB`: cancel its in-flight batches and keep what finished."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentflow_jobs.cli.apply import (
    default_paths,
    load_job_specs,
    print_reports,
    resolve_state,
    spec_set_options,
)
from agentflow_jobs.runner import cancel_job

__all__ = ["command"]


@click.command(name="cancel")
@click.argument("job")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--lock-timeout", type=float, default=0.0, envvar="AGENTFLOW_LOCK_TIMEOUT")
@click.option("--json", "as_json", is_flag=True)
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
    spec_paths = default_paths(paths)
    specs = load_job_specs(spec_paths, root)
    report = cancel_job(
        specs, job, state=str(resolve_state(spec_paths, state)), lock_timeout=lock_timeout
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    print_reports([report], title="cancel")
    return 0
