"""A workspace: the state plus its lock, held for one command or for a watch loop.

The state is a file or a PostgreSQL workspace (``backend.py``); either way the lock is
taken first and released last, and a refusal names the holder and the run it is doing.

``apply_jobs`` and friends accept either a path (the lock is taken for that call) or an
open ``Workspace`` (the caller holds the lock across several reconciles, as ``watch``
does, so no other apply can slip in between two of them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from agentflow_jobs.errors import LockedError, StateError
from agentflow_jobs.runner.backend import (
    PgLocation,
    StateLocation,
    as_location,
    open_state,
    state_lock,
)
from agentflow_jobs.runner.lock import describe_holder
from agentflow_jobs.runner.state import State

__all__ = ["Workspace", "open_workspace"]


class Workspace:
    """The state of a set of specs, locked for exclusive use while open."""

    def __init__(
        self,
        state: str | Path | PgLocation,
        *,
        lock_timeout: float = 0.0,
        command: str = "apply",
    ) -> None:
        self.location: StateLocation = as_location(state)
        self.lock = state_lock(self.location, command=command)
        self.lock_timeout = lock_timeout
        self._state: State | None = None

    @property
    def path(self) -> Path | None:
        """The state file (None for a state in PostgreSQL)."""
        return self.location if isinstance(self.location, Path) else None

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError("workspace is not open")
        return self._state

    def open(self) -> Workspace:
        try:
            self.lock.acquire(self.lock_timeout)
        except LockedError as exc:
            raise _naming_the_run(exc, self.location) from None
        try:
            self._state = open_state(self.location)
        except BaseException:
            self.lock.release()
            raise
        return self

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None
        self.lock.release()

    def __enter__(self) -> Workspace:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def open_workspace(
    state: Workspace | str | Path | PgLocation, *, lock_timeout: float = 0.0, command: str = "apply"
) -> Iterator[Workspace]:
    """Use an already open workspace as is, or open (and lock) one for this block."""
    if isinstance(state, Workspace):
        if state._state is None:
            with state:
                yield state
        else:
            yield state
        return
    with Workspace(state, lock_timeout=lock_timeout, command=command) as workspace:
        yield workspace


def _naming_the_run(exc: LockedError, location: StateLocation) -> LockedError:
    """``exc`` with the holder's run added, when the state says which one it is doing."""
    info = dict(exc.holder)
    if info.get("run") or not info.get("pid"):
        return exc
    try:
        with open_state(location) as state:
            info["run"] = state.running(int(info["pid"]), str(info.get("host")))
    except StateError:
        return exc
    if not info["run"]:
        return exc
    return LockedError(f"state {location} is locked by {describe_holder(info)}", holder=info)
