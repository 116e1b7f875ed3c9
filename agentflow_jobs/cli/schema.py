"""`agentflow-jobs schema`: print or write the job-spec JSON Schema."""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.errors import UsageError
from agentflow_jobs.spec import schema_text

__all__ = ["command"]


@click.command(name="schema")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the schema to this file instead of stdout.",
)
def command(output: Path | None) -> int:
    """Print the JSON Schema of job specs (for editors and CI).

    `make schema` writes it to schemas/job-spec.schema.json.
    """
    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return 0
    try:
        # no mkdir: a typo in the directory should be an error, not a new directory tree
        output.write_text(text, encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"cannot write {output}: directory {output.parent} does not exist") from exc
    except OSError as exc:  # a parent that is a file, a read-only or missing mount
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {output}", err=True)
    return 0
