"""How apply reports progress: a small protocol the CLI implements (rich or plain logs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agentflow_jobs.runner.report import JobReport

__all__ = ["NullProgress", "Progress"]


class Progress(Protocol):
    """Callbacks from the runner; each must be cheap (called on the event loop)."""

    def job_started(self, job: str, mode: str, to_send: int | None, total: int | None) -> None:
        """A job starts sending; ``None`` while its input is still being counted."""

    def job_counted(self, job: str, to_send: int, total: int) -> None:
        """The count of a job that started sending before its totals were known is done."""

    def sending(self, job: str) -> None:
        """Sync mode: every request of the job's first window is on its way, and nothing
        happens until answers come back (a display may load what it draws with then)."""

    def items_done(self, job: str, completed: int, failed: int) -> None: ...

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None: ...

    def job_finished(self, report: JobReport) -> None: ...


class NullProgress:
    """Reports nothing (library use, tests)."""

    def job_started(self, job: str, mode: str, to_send: int | None, total: int | None) -> None:
        return None

    def job_counted(self, job: str, to_send: int, total: int) -> None:
        return None

    def sending(self, job: str) -> None:
        return None

    def items_done(self, job: str, completed: int, failed: int) -> None:
        return None

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None:
        return None

    def job_finished(self, report: JobReport) -> None:
        return None
