"""`agentflow-jobs retry` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="retry")
def command() -> None:
    """Not built yet."""
    raise UsageError("`retry` is not built yet")
