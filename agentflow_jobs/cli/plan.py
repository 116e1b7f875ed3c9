"""`agentflow-jobs plan`: what apply would do, per job, without sending anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.table import Table

from agentflow_jobs.cli.options import (
    job_option,
    json_option,
    mode_option,
    open_spec_set,
    spec_set_options,
)
from agentflow_jobs.cli.reports import stderr_console, usd
from agentflow_jobs.runner import CostEstimate, JobPlan, plan_jobs, total_cost

__all__ = ["command"]

PENDING_EXIT = 10


def _table(plans: list[JobPlan]) -> Table:
    table = Table(title="plan", title_justify="left")
    for name in (
        "job",
        "status",
        "why",
        "mode",
        "items",
        "cached",
        "failed",
        "to send",
        "est. requests",
        "est. tokens",
        "est. in/out tokens",
        "est. sync $",
        "est. batch $",
        "output",
    ):
        table.add_column(
            name, justify="left" if name in ("job", "status", "why", "mode", "output") else "right"
        )
    for p in plans:
        tokens = "?" if p.est_tokens is None and p.to_send else str(p.est_tokens or 0)
        table.add_row(
            p.job,
            p.status.replace("_", " "),
            ", ".join(p.reasons),
            p.mode,
            str(p.total),
            str(p.cached),
            str(p.failed + p.input_errors),
            str(p.to_send),
            str(p.to_send),  # one provider request per item, in either mode
            tokens,
            f"{p.est_input_tokens:,}/{p.est_output_tokens:,}",
            usd(p.cost.sync_usd),
            usd(p.cost.batch_usd),
            p.output if "://" in p.output else os.path.relpath(p.output),
        )
    return table


def _bases(plans: list[JobPlan]) -> list[str]:
    """What the costs are based on: one line per basis, naming its jobs."""
    jobs: dict[str, list[str]] = {}
    for p in plans:
        if p.to_send:
            jobs.setdefault(p.cost.basis, []).append(p.job)
    return [f"cost of {', '.join(names)}: {basis}" for basis, names in jobs.items()]


def _plan_document(plans: list[JobPlan], pending: bool) -> dict[str, object]:
    costs: dict[str, CostEstimate] = {p.job: p.cost for p in plans}
    return {
        "pending": pending,
        "jobs": [p.to_dict() for p in plans],
        "total_cost_usd": total_cost(costs),
    }


@click.command(name="plan")
@job_option("Plan only this job (repeatable).")
@mode_option
@json_option("Print the plan as JSON on stdout.")
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help="Exit 10 when work is pending, 0 when nothing would run.",
)
@spec_set_options
def command(
    paths: tuple[Path, ...],
    job_names: tuple[str, ...],
    mode: str | None,
    as_json: bool,
    exit_code: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Show what apply would do (default PATH: specs/)."""
    spec_set = open_spec_set(paths, root, state)
    plans = plan_jobs(
        spec_set.specs, state=spec_set.state, mode=mode, job_names=list(job_names) or None
    )
    pending = any(p.pending for p in plans)
    if as_json:
        click.echo(json.dumps(_plan_document(plans, pending), indent=2))
    else:
        console = stderr_console()
        console.print(_table(plans))
        total = total_cost({p.job: p.cost for p in plans})
        console.print(
            f"estimated total: {usd(total['sync_usd'])} sync, {usd(total['batch_usd'])} batch",
            highlight=False,
        )
        for line in _bases(plans):
            console.print(line, highlight=False)
    return PENDING_EXIT if exit_code and pending else 0
