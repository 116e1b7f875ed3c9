"""`agentflow-jobs validate` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="validate")
def command() -> None:
    """Not built yet."""
    raise UsageError("`validate` is not built yet")
