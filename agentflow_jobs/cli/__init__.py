"""Command line: the only place that parses argv, prints, and exits.

Each command group lives in its own module and exposes a ``click`` command named
``command``; ``main(argv) -> int`` runs one command and turns errors into exit codes:
0 ok · 1 a job failed · 2 usage · 3 invalid spec · 4 service/provider unreachable ·
5 state problem · 130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from agentflow_jobs import __version__
from agentflow_jobs.cli import quiet_imports  # noqa: F401  (first: structlog and httpx without rich)
from agentflow_jobs.collector import collector_paused
from agentflow_jobs.errors import AgentFlowError
from agentflow_jobs.log import configure_logging

__all__ = ["entrypoint", "exit_now", "main"]

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
    "state": "state",
}


_LOG_FORMATS = click.Choice(["auto", "console", "json"])
_LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
_LOG_FORMAT_HELP = "Log format on stderr: readable on a TTY, JSON lines otherwise."


def _relog(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """A global log option given after the command: it wins over the one before it."""
    if value is None or param.name is None:
        return
    settings: dict[str, str] = ctx.meta.setdefault("agentflow.log", {})
    settings[param.name] = value
    configure_logging(fmt=settings.get("log_format", "auto"), level=settings.get("log_level", "info"))


def _global_options() -> list[click.Option]:
    """``--log-format`` / ``--log-level`` again on every command, so they may follow it."""
    shared: dict[str, Any] = {"default": None, "expose_value": False, "callback": _relog}
    return [
        click.Option(["--log-format"], type=_LOG_FORMATS, help=_LOG_FORMAT_HELP, **shared),
        click.Option(["--log-level"], type=_LOG_LEVELS, help="Log level.", **shared),
    ]


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (fast start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        with collector_paused():
            command: click.Command = importlib.import_module(f"agentflow_jobs.cli.{module}").command
        names = {name for param in command.params for name in param.opts}
        if "--log-level" not in names:
            command.params.extend(_global_options())
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agentflow-jobs")
@click.option(
    "--log-format",
    type=_LOG_FORMATS,
    default="auto",
    envvar="AGENTFLOW_LOG_FORMAT",
    show_default=True,
    help=_LOG_FORMAT_HELP,
)
@click.option(
    "--log-level",
    type=_LOG_LEVELS,
    default="info",
    envvar="AGENTFLOW_LOG_LEVEL",
    show_default=True,
)
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str) -> None:
    """agentflow-jobs: make LLM batch outputs match the job specs in git."""
    ctx.meta["agentflow.log"] = {"log_format": log_format, "log_level": log_level}
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
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` without tearing the interpreter down.

    By now every file a command writes is closed (and fsynced where it matters) and the
    state committed; what the interpreter's teardown would still do is free every module
    and object one by one: ~0.1 s after a 10,000-item apply, a tenth of the time it
    spends outside the provider's window (bench ``e2e``), and a noticeable part of a
    quick ``status`` or ``plan``. The normal exit is kept whenever it could matter: a
    thread still running that it would wait for (a local model's workers), or a
    standard stream that cannot be flushed (a closed pipe: Python reports it as usual).
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    if others:
        sys.exit(code)
    logging.shutdown()
    os._exit(code)
