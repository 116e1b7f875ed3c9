"""The state lock: one process at a time works on a state file.

``fcntl.flock`` on ``.agentflow/state.lock``: the kernel drops the lock when the holder
dies, however it dies, so a stale lock never needs cleaning up. The holder writes its
pid, host and start time into the file so a waiting process can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from agentflow_jobs.errors import LockedError, StateError

__all__ = ["StateLock", "describe_holder", "lock_path_for"]


def lock_path_for(state_path: str | Path) -> Path:
    """The lock file that guards ``state_path`` (``state.db`` -> ``state.lock``)."""
    return Path(state_path).with_suffix(".lock")


class StateLock:
    """An exclusive, kernel-released lock with holder information inside."""

    def __init__(self, path: str | Path, *, command: str = "apply") -> None:
        self.path = Path(path)
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; LockedError names the holder."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot open lock file: {exc.strerror}") from exc
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._locked_error() from None
                time.sleep(0.05)
        self._fd = fd
        self._write_holder(fd)

    def _write_holder(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    def holder(self) -> dict[str, Any]:
        """Who holds (or last held) the lock, as written in the lock file."""
        try:
            data: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data

    def probe(self) -> dict[str, Any] | None:
        """Who holds the lock now, or None when it is free (for ``status``)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None  # never locked
        try:
            # shared: probing never keeps a real holder out for longer than this call
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder()
        finally:
            os.close(fd)
        return None

    def _locked_error(self) -> LockedError:
        info = self.holder()
        return LockedError(f"state {self.path} is locked by {describe_holder(info)}", holder=info)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def describe_holder(info: dict[str, Any]) -> str:
    """``pid 12 on ci-7 (apply, since …, run run_…)``, or ``another process``."""
    if not info.get("pid"):
        return "another process"
    run = f", run {info['run']}" if info.get("run") else ""
    return (
        f"pid {info['pid']} on {info.get('host')} ({info.get('command', 'apply')}, "
        f"since {info.get('started')}{run})"
    )
