"""`agentflow-jobs status`: per job, the last apply, drift since, items, batches, tokens, spend;
and who holds the state's lock (pid, host, command, since, run), if anyone does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agentflow_jobs.cli.options import job_option, json_option, open_spec_set, spec_set_options
from agentflow_jobs.cli.reports import stderr_console, usd
from agentflow_jobs.runner import job_statuses, lock_holder
from agentflow_jobs.runner.lock import describe_holder

__all__ = ["command"]


@click.command(name="status")
@job_option("Only this job (repeatable).")
@json_option("Print the status as JSON on stdout.")
@spec_set_options
def command(
    paths: tuple[Path, ...],
    job_names: tuple[str, ...],
    as_json: bool,
    state: Path | None,
    root: Path | None,
) -> int:
    """Show each job's state (default PATH: specs/)."""
    spec_set = open_spec_set(paths, root, state)
    rows = job_statuses(spec_set.specs, state=spec_set.state, job_names=list(job_names) or None)
    holder = lock_holder(spec_set.state)
    if as_json:
        click.echo(json.dumps({"jobs": rows, "lock": holder}, indent=2))
        return 0
    table = Table(title="status", title_justify="left")
    for name in _COLUMNS:
        table.add_column(name)
    for row in rows:
        table.add_row(*_status_row(row))
    stderr_console().print(table)
    if holder is not None:
        click.echo(f"state {spec_set.state} is locked by {describe_holder(holder)}", err=True)
    return 0


_COLUMNS = (
    "job", "last apply", "status", "drift", "items", "done", "failed", "batches", "tokens", "cost",
    "output",
)


def _status_row(row: dict[str, Any]) -> list[str]:
    batches = ", ".join(
        f"{b['batch_id'] or 'submitting'} {b['status']} {b['completed']}/{b['items']}"
        + "".join(_provider_batch(p) for p in b.get("provider_batches") or [])
        for b in row["batches_in_flight"]
    )
    return [
        row["job"],
        row["last_apply"] or "never",
        row["last_status"] or "",
        ", ".join(row["drift"]) or "none",
        str(row["items"]),
        str(row["completed"]),
        str(row["failed"]),
        batches or "-",
        str(row["tokens"]),
        usd(row["cost_usd"]),
        row["output"],
    ]


def _provider_batch(batch: dict[str, Any]) -> str:
    """`` (provider batch_abc in_progress 120/500, expires 2026-12-05 10:00)``, or for a
    provider that keeps results for a while (Anthropic) ``results until ...``"""
    until = batch.get("results_until")
    label, at = ("results until", until) if until else ("expires", batch.get("expires_at"))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "unknown"
    return (f" (provider {batch.get('id') or 'creating'} {batch.get('status') or batch.get('state')}"
            f" {batch.get('completed', 0)}/{batch.get('total', 0)}, {label} {when})")
