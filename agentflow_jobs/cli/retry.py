"""`agentflow-jobs retry JOB`: re-send only the items that failed last time."""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.cli.apply import (
    default_paths,
    finish,
    load_job_specs,
    make_progress,
    resolve_state,
    spec_set_options,
    stop_on_signals,
)
from agentflow_jobs.runner import apply_jobs

__all__ = ["command"]


@click.command(name="retry")
@click.argument("job")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(["sync", "batch", "auto"]), default=None)
@click.option("--lock-timeout", type=float, default=0.0, envvar="AGENTFLOW_LOCK_TIMEOUT")
@click.option("--json", "as_json", is_flag=True)
@spec_set_options
def command(
    job: str,
    paths: tuple[Path, ...],
    mode: str | None,
    lock_timeout: float,
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Re-send JOB's failed items (and anything not yet answered), then rewrite its output."""
    spec_paths = default_paths(paths)
    specs = load_job_specs(spec_paths, root)
    with stop_on_signals() as stop:
        report = apply_jobs(
            specs,
            state=str(resolve_state(spec_paths, state)),
            mode=mode,
            job_names=[job],
            retry=True,
            progress=make_progress(),
            stop=stop,
            lock_timeout=lock_timeout,
        )
    return finish(report, as_json=as_json, title="retry")
