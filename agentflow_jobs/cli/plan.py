"""`agentflow-jobs plan` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="plan")
def command() -> None:
    """Not built yet."""
    raise UsageError("`plan` is not built yet")
