"""`agentflow-jobs apply`: make outputs match the specs, sending only what changed.

What the other runner commands share lives beside it: the options in ``options``, the
progress display in ``progress``, the summary table and ``--json`` in ``reports``
(all human output goes to stderr; stdout is reserved for ``--json``).
"""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.cli.options import (
    job_option,
    json_option,
    lock_timeout_option,
    max_cost_option,
    mode_option,
    open_spec_set,
    spec_set_options,
)
from agentflow_jobs.cli.reports import apply_and_report

__all__ = ["command"]


@click.command(name="apply")
@job_option("Apply only this job (repeatable).")
@mode_option
@click.option("--force", is_flag=True, help="Send every item again, ignoring the ledger.")
@click.option("--detach", is_flag=True, help="Batch mode: submit and exit; a later apply collects.")
@lock_timeout_option
@max_cost_option
@json_option("Print the report as JSON on stdout.")
@spec_set_options
def command(
    paths: tuple[Path, ...],
    job_names: tuple[str, ...],
    mode: str | None,
    force: bool,
    detach: bool,
    lock_timeout: float,
    max_cost_usd: float | None,
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Make the outputs match the job specs (default PATH: specs/)."""
    return apply_and_report(
        open_spec_set(paths, root, state),
        title="apply",
        as_json=as_json,
        mode=mode,
        job_names=job_names,
        lock_timeout=lock_timeout,
        force=force,
        detach=detach,
        max_cost_usd=max_cost_usd,
    )
