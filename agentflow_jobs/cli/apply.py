"""`agentflow-jobs apply` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="apply")
def command() -> None:
    """Not built yet."""
    raise UsageError("`apply` is not built yet")
