"""`agentflow-jobs status` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="status")
def command() -> None:
    """Not built yet."""
    raise UsageError("`status` is not built yet")
