"""`agentflow-jobs schema`: print or write the job-spec JSON Schema."""

from __future__ import annotations

from pathlib import Path

import click

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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
    return 0
