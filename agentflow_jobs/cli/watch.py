"""`agentflow-jobs watch` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from agentflow_jobs.errors import UsageError


@click.command(name="watch")
def command() -> None:
    """Not built yet."""
    raise UsageError("`watch` is not built yet")
