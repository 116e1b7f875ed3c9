"""`agentflow-jobs state`: the runner's state itself (today: `state migrate --to URL`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentflow_jobs.cli.options import (
    StateParam,
    json_option,
    lock_timeout_option,
    resolve_state,
    spec_paths,
    spec_set_options,
)
from agentflow_jobs.runner import copy_state

__all__ = ["command"]


@click.group(name="state")
def command() -> None:
    """Work with the state (runs, ledger, batch records) itself."""


@command.command(name="migrate")
@click.option("--to", "to", required=True, type=StateParam(),
              help="Where to copy the state: a postgresql:// URL (or another state file).")
@lock_timeout_option
@json_option("Print the rows copied per table as JSON on stdout.")
@spec_set_options
def migrate(
    paths: tuple[Path, ...],
    to: Path | str,
    lock_timeout: float,
    as_json: bool,
    state: Path | str | None,
    root: Path | None,
) -> int:
    """Copy the state of the specs in PATHS (default: specs/) into an empty one at --to.

    The target's workspace key is --state-key, else the repository's identity, so CI
    runners of the same repository find the copied state with `--state URL` alone."""
    resolved = spec_paths(paths)
    source = resolve_state(resolved, state, root)
    target = resolve_state(resolved, to, root)
    counts = copy_state(source, target, lock_timeout=lock_timeout)
    if as_json:
        click.echo(json.dumps({"from": str(source), "to": str(target), "rows": counts}, indent=2))
    copied = ", ".join(f"{n} {table}" for table, n in counts.items())
    click.echo(f"copied {copied} from {source} to {target}", err=True)
    return 0
