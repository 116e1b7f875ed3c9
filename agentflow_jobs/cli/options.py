"""The command-line options the spec commands share, declared once, and what they resolve to.

``spec_set_options`` adds ``[PATHS]...``, ``--state``, ``--state-key`` and ``--root`` (in
that order, after any argument declared above it, so ``cancel JOB [PATHS]...`` reads
naturally); ``open_spec_set`` turns them into the loaded specs and the state every runner
command works on: a file, or a workspace in PostgreSQL. ``--state-key`` only matters with
a ``postgresql://`` state, so it reaches ``resolve_state`` through the click context
rather than through every command's signature. The smaller decorators (``--job``,
``--mode``, ``--lock-timeout``, ``--json``) keep one spelling, default and environment
variable per option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from agentflow_jobs.runner import (
    PgLocation,
    StateLocation,
    default_state_path,
    is_state_url,
    workspace_key,
)
from agentflow_jobs.spec import JobSpec, load_specs

__all__ = [
    "SpecSet",
    "StateParam",
    "job_option",
    "json_option",
    "lock_timeout_option",
    "max_cost_option",
    "mode_option",
    "open_spec_set",
    "resolve_state",
    "root_option",
    "spec_paths",
    "spec_set_options",
    "state_key_option",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC_DIR = Path("specs")


def _existing_directory(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    # a root that does not exist would make every path "outside the root", or let
    # `watch` wait forever on nothing; say what is wrong with the option itself
    if value is not None and not value.is_dir():
        raise click.BadParameter(f"{value}: not an existing directory")
    return value


def root_option(func: F) -> F:
    """``--root``: the workspace root job files must stay inside (an existing directory)."""
    return click.option(
        "--root",
        # click says "is a file" itself; it only skips the check for a missing path
        type=click.Path(file_okay=False, path_type=Path),
        callback=_existing_directory,
        default=None,
        help="Workspace root job files must stay in [default: nearest ancestor with .git, else cwd].",
    )(func)


class StateParam(click.ParamType[Any]):
    """A state file (never a directory) or a ``postgresql://`` URL, kept as given."""

    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (Path, PgLocation)) or is_state_url(value):
            return value
        # a directory here would only fail later as "unable to open database file"
        return click.Path(dir_okay=False, path_type=Path).convert(value, param, ctx)


_STATE_KEY = "agentflow_jobs.state_key"


def _keep_state_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None and not value.strip():
        raise click.BadParameter("an empty workspace key")
    ctx.meta[_STATE_KEY] = value


def state_key_option(func: F) -> F:
    """``--state-key``: the workspace key of a PostgreSQL state (read by ``resolve_state``)."""
    return click.option(
        "--state-key",
        default=None,
        envvar="AGENTFLOW_STATE_KEY",
        expose_value=False,
        callback=_keep_state_key,
        help="Workspace key in a PostgreSQL state [default: the git remote's URL, else the "
        "workspace folder's path].",
    )(func)


def spec_set_options(func: F) -> F:
    """``[PATHS]...`` plus ``--state`` / ``--state-key`` / ``--root``, for runner commands."""
    func = root_option(func)
    func = state_key_option(func)
    func = click.option(
        "--state",
        "state",
        type=StateParam(),
        default=None,
        envvar="AGENTFLOW_STATE",
        help="State file, or a postgresql:// URL shared by several machines "
        "(default: .agentflow/state.db next to the specs folder).",
    )(func)
    return click.argument("paths", nargs=-1, type=click.Path(path_type=Path))(func)


def job_option(help: str) -> Callable[[F], F]:
    """``--job NAME`` (repeatable), passed on as ``job_names``."""
    return click.option("--job", "job_names", multiple=True, help=help)


def mode_option(func: F) -> F:
    return click.option(
        "--mode",
        type=click.Choice(["sync", "batch", "auto"]),
        default=None,
        help="Override the specs' mode.",
    )(func)


def lock_timeout_option(func: F) -> F:
    return click.option(
        "--lock-timeout",
        type=float,
        default=0.0,
        envvar="AGENTFLOW_LOCK_TIMEOUT",
        show_default=True,
        help="Seconds to wait for another process to release the state.",
    )(func)


def max_cost_option(func: F) -> F:
    return click.option(
        "--max-cost-usd",
        "max_cost_usd",
        type=click.FloatRange(min=0),
        default=None,
        help="Budget in USD for this whole run: a job whose estimate does not fit what is "
        "left is not started, and sending stops once the run's spend reaches it.",
    )(func)


def json_option(help: str) -> Callable[[F], F]:
    """``--json``, passed on as ``as_json``: the document on stdout, tables stay on stderr."""
    return click.option("--json", "as_json", is_flag=True, help=help)


@dataclass(frozen=True)
class SpecSet:
    """What ``[PATHS]... --state --root`` name: the spec paths, their jobs, the state file."""

    paths: list[Path]
    specs: list[JobSpec]
    state: StateLocation


def spec_paths(paths: Sequence[Path]) -> list[Path]:
    """The PATH arguments, or ``specs/`` when none were given."""
    return list(paths) or [DEFAULT_SPEC_DIR]


def resolve_state(
    paths: Sequence[Path], state: Path | str | None, root: Path | None = None
) -> StateLocation:
    """``--state``, else ``$AGENTFLOW_STATE`` (via click), else next to the first PATH; a
    URL's workspace key is ``--state-key``, else ``$AGENTFLOW_STATE_KEY``, else the
    repository's identity (``runner.workspace_key``)."""
    if state is None:
        return default_state_path(paths[0])
    if not is_state_url(state):
        return Path(state)
    ctx = click.get_current_context(silent=True)
    key = ctx.meta.get(_STATE_KEY) if ctx is not None else None
    return PgLocation(str(state), key or workspace_key(root, paths[0]))


def open_spec_set(
    paths: Sequence[Path], root: Path | None, state: Path | str | None
) -> SpecSet:
    """Load every job under ``paths`` (raising SpecError / UsageError) and find the state."""
    resolved = spec_paths(paths)
    specs = list(load_specs(resolved, root=root))
    return SpecSet(paths=resolved, specs=specs, state=resolve_state(resolved, state, root))
