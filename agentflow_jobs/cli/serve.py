"""`agentflow-jobs serve` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="serve")
def command() -> None:
    """Not built yet."""
    raise UsageError("`serve` is not built yet")
