"""Where a state lives: a SQLite file (the default) or a workspace in PostgreSQL.

``--state`` (``AGENTFLOW_STATE``) is a path or a ``postgresql://`` URL. A PostgreSQL
state is shared, so it is found by a workspace key: ``--state-key``
(``AGENTFLOW_STATE_KEY``) when given, else the repository's identity:

- the URL of the git remote ``origin`` (else of the first remote), without credentials,
  scheme or ``.git`` (``git@github.com:acme/specs.git`` and
  ``https://token@github.com/acme/specs`` are both ``github.com/acme/specs``), so every
  clone of the repository, on any CI runner, finds the same state;
- else the workspace root's absolute path (a folder that is not a clone is its own
  workspace);
- followed by ``:<folder>`` when the specs' state folder is not the root itself
  (``specs/`` at the root: none), as a state file would sit beside that folder.

``open_state`` and ``state_lock`` choose the implementation from the location.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from agentflow_jobs.runner.lock import StateLock, lock_path_for
from agentflow_jobs.runner.state import SqliteState, State, default_state_path
from agentflow_jobs.urls import display_url, is_postgres_url

__all__ = [
    "Lock",
    "PgLocation",
    "StateLocation",
    "as_location",
    "is_state_url",
    "open_state",
    "repository_key",
    "state_lock",
    "workspace_key",
]


@dataclass(frozen=True)
class PgLocation:
    """A workspace's state in a PostgreSQL database."""

    url: str
    key: str

    def __str__(self) -> str:
        return f"{display_url(self.url)} (workspace {self.key})"


StateLocation = Path | PgLocation


class Lock(Protocol):
    """The state lock of either backend."""

    @property
    def held(self) -> bool: ...

    def acquire(self, timeout: float = 0.0) -> None: ...

    def release(self) -> None: ...

    def probe(self) -> dict[str, Any] | None: ...


def is_state_url(value: str | Path) -> bool:
    """Whether ``value`` names a PostgreSQL state rather than a file."""
    return is_postgres_url(value)


def as_location(state: str | Path | PgLocation, key: str | None = None) -> StateLocation:
    """A path, or a URL with its workspace key (``key``, else the working directory's)."""
    if isinstance(state, PgLocation):
        return state
    if is_state_url(state):
        return PgLocation(str(state), key or workspace_key(None, Path.cwd() / "specs"))
    return Path(state)


def open_state(location: StateLocation) -> State:
    """Open (and migrate) the state at ``location``."""
    if isinstance(location, PgLocation):
        from agentflow_jobs.runner.state_pg import PgState

        return PgState(location)
    return SqliteState(location)


def state_lock(location: StateLocation, *, command: str = "apply") -> Lock:
    """The lock guarding ``location`` (not taken yet)."""
    if isinstance(location, PgLocation):
        from agentflow_jobs.runner.lock_pg import PgLock

        return PgLock(location, command=command)
    return StateLock(lock_path_for(location), command=command)


def workspace_key(root: Path | None, first_path: Path) -> str:
    """The key of the specs at ``first_path`` in the workspace ``root`` (see above)."""
    from agentflow_jobs.spec import find_root

    base = find_root(root, start=first_path if first_path.is_dir() else first_path.parent)
    folder = default_state_path(first_path).parent.parent
    key = repository_key(base)
    try:
        relative = folder.relative_to(base).as_posix()
    except ValueError:
        return f"{key}:{folder.as_posix()}"
    return key if relative == "." else f"{key}:{relative}"


def repository_key(root: Path) -> str:
    """The git remote's URL without credentials or scheme, else ``root``'s absolute path."""
    try:
        found = subprocess.run(
            ["git", "-C", str(root), "config", "--get-regexp", r"^remote\..*\.url$"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return str(root.resolve())
    remotes = dict(
        line.split(" ", 1) for line in found.stdout.splitlines() if " " in line
    )
    url = remotes.get("remote.origin.url") or next(iter(remotes.values()), "")
    return _normalise_remote(url.strip()) if url.strip() else str(root.resolve())


def _normalise_remote(url: str) -> str:
    """``host/path`` of a remote URL, ssh, scp-style or https alike, with no credentials."""
    scp = re.fullmatch(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)", url)
    if scp and "://" not in url:
        host, path = scp.groups()
    else:
        parts = urlsplit(url)
        host, path = (parts.hostname or ""), parts.path
        if not host:  # a local path used as a remote
            return str(Path(url).expanduser().resolve())
    path = path.strip("/").removesuffix(".git")
    return f"{host.lower()}/{path}"
