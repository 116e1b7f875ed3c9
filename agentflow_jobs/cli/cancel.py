"""`agentflow-jobs cancel` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="cancel")
def command() -> None:
    """Not built yet."""
    raise UsageError("`cancel` is not built yet")
