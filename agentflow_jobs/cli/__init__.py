"""Command line: the only place that parses argv, prints, and exits.

Each command group lives in its own module and exposes a ``click`` command named
``command``; ``main(argv) -> int`` runs one command and turns errors into exit codes:
0 ok · 1 a job failed · 2 usage · 3 invalid spec · 4 service/provider unreachable ·
5 state problem · 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from agentflow_jobs import __version__
from agentflow_jobs.errors import AgentFlowError
from agentflow_jobs.log import configure_logging

__all__ = ["entrypoint", "main"]

# command name -> module under agentflow_jobs.cli holding ``command``
_COMMANDS = {
    "validate": "validate",
    "schema": "schema",
    "plan": "plan",
    "apply": "apply",
    "status": "status",
    "cancel": "cancel",
    "retry": "retry",
    "watch": "watch",
    "serve": "serve",
}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (fast start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(f"agentflow_jobs.cli.{module}").command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agentflow-jobs")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    envvar="AGENTFLOW_LOG_FORMAT",
    show_default=True,
    help="Log format on stderr: readable on a TTY, JSON lines otherwise.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    envvar="AGENTFLOW_LOG_LEVEL",
    show_default=True,
)
def cli(log_format: str, log_level: str) -> None:
    """agentflow-jobs: make LLM batch outputs match the job specs in git."""
    configure_logging(fmt=log_format, level=log_level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="agentflow-jobs", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except AgentFlowError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def entrypoint() -> None:
    """Console-script entry point."""
    sys.exit(main())
