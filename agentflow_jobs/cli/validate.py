"""`agentflow-jobs validate [PATH...]`: check job specs, report every problem located."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentflow_jobs.cli.options import json_option, root_option, spec_paths
from agentflow_jobs.errors import Problem, SpecError
from agentflow_jobs.spec import discover_spec_files, load_specs

__all__ = ["command"]


@click.command(name="validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@root_option
@json_option("Print one JSON document on stdout.")
def command(paths: tuple[Path, ...], root: Path | None, as_json: bool) -> int:
    """Validate job specs in PATH... (files or directories; default specs/).

    Prints each problem as path:line:col: message. Exit 0 when valid, 3 when not.
    """
    files = discover_spec_files(spec_paths(paths))
    try:
        specs = load_specs(files, root=root)
    except SpecError as exc:
        _report(exc.problems, [], len(files), as_json)
        return exc.exit_code
    _report([], [spec.name for spec in specs], len(files), as_json)
    return 0


def _report(problems: list[Problem], jobs: list[str], file_count: int, as_json: bool) -> None:
    if as_json:
        document = {
            "valid": not problems,
            "jobs": jobs,
            "problems": [p.to_dict() for p in problems],
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for problem in problems:
        click.echo(str(problem))
    checked = _plural(file_count, "file")
    if problems:
        bad = _plural(len({p.path for p in problems}), "file")
        click.echo(f"invalid: {_plural(len(problems), 'problem')} in {bad} ({checked} checked)")
    elif jobs:
        click.echo(f"valid: {_plural(len(jobs), 'job')} in {checked}")
    else:
        click.echo(f"valid: no jobs found ({checked} checked)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
