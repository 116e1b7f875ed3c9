"""A workspace: the state file plus its lock, held for one command or for a watch loop.

``apply_jobs`` and friends accept either a path (the lock is taken for that call) or an
open ``Workspace`` (the caller holds the lock across several reconciles, as ``watch``
does, so no other apply can slip in between two of them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from agentflow_jobs.runner.lock import StateLock, lock_path_for
from agentflow_jobs.runner.state import State

__all__ = ["Workspace", "open_workspace"]


class Workspace:
    """The state of a set of specs, locked for exclusive use while open."""

    def __init__(
        self, state_path: str | Path, *, lock_timeout: float = 0.0, command: str = "apply"
    ) -> None:
        self.path = Path(state_path)
        self.lock = StateLock(lock_path_for(self.path), command=command)
        self.lock_timeout = lock_timeout
        self._state: State | None = None

    @property
    def state(self) -> State:
        if self._state is None:
            raise RuntimeError("workspace is not open")
        return self._state

    def open(self) -> Workspace:
        self.lock.acquire(self.lock_timeout)
        try:
            self._state = State(self.path)
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
    state: Workspace | str | Path, *, lock_timeout: float = 0.0, command: str = "apply"
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
