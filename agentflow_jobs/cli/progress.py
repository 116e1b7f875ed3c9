"""Progress while jobs run: bars on a terminal, throttled log lines elsewhere; signals.

Both displays implement the runner's ``Progress`` protocol; the bars (``cli.bars``) and
rich with them are imported only for a terminal (~15 ms of every start otherwise).
``stop_on_signals`` turns the first SIGINT/SIGTERM into a stop event (in-flight requests
finish and are saved) and the second into an abort.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import click
import structlog

from agentflow_jobs.runner import JobReport, Progress

__all__ = ["PlainProgress", "make_progress", "stop_on_signals"]

log = structlog.get_logger()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the stop event (finish in-flight work); a second one aborts."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping: finishing requests in flight (Ctrl-C again to abort)", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class PlainProgress:
    """Log lines (for CI and pipes): one on start, at most one per second, one at the end.

    ``on_idle`` runs once, when a sync job's first window is on its way (``sending``):
    nothing happens until its answers come back, so a short pause there delays nothing
    (``reports.load_table`` loads the summary table's modules, ~17 ms the command would
    otherwise spend after the last answer). With the first answers, it delayed the
    workers whose requests go first and last: bench ``e2e`` +0.003 of the ideal in 12
    alternating pairs, ahead in 8, behind in 2 (bench/README.md).
    """

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self._last = 0.0
        self._counts: dict[str, list[float]] = {}
        self._on_idle = on_idle

    def job_started(self, job: str, mode: str, to_send: int | None, total: int | None) -> None:
        self._counts[job] = [0, 0, to_send or 0, time.monotonic()]
        if to_send is None:
            log.info("job started", job=job, mode=mode, counting="while sending")
        else:
            log.info("job started", job=job, mode=mode, to_send=to_send, items=total)

    def job_counted(self, job: str, to_send: int, total: int) -> None:
        self._of(job)[2] = to_send  # for the ETA

    def _of(self, job: str) -> list[float]:
        """The job's counters: completed, failed, to send (for the ETA), when it started."""
        return self._counts.setdefault(job, [0, 0, 0, time.monotonic()])

    def sending(self, job: str) -> None:
        if self._on_idle is not None:
            idle, self._on_idle = self._on_idle, None
            idle()

    def items_done(self, job: str, completed: int, failed: int) -> None:
        counts = self._of(job)
        counts[0] += completed
        counts[1] += failed
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            done = counts[0] + counts[1]
            rate = done / max(now - counts[3], 1e-6)
            eta = (counts[2] - done) / rate if rate and counts[2] else None
            log.info(
                "progress",
                job=job,
                done=int(counts[0]),
                failed=int(counts[1]),
                total=int(counts[2]),
                rate=round(rate, 1),
                eta_s=eta and round(eta),
            )

    def batch_progress(self, job: str, done: int, failed: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            log.info("batch progress", job=job, done=done, failed=failed, total=total)

    def job_finished(self, report: JobReport) -> None:
        log.info(
            "job finished",
            job=report.name,
            status=report.status,
            sent=report.sent,
            completed=report.completed,
            failed=report.failed + report.input_errors,
        )


def make_progress(on_idle: Callable[[], None] | None = None) -> Progress:
    """Bars when stderr is a terminal (as rich sees it), log lines otherwise (given
    ``on_idle``, see ``PlainProgress``; the bars have rich loaded already)."""
    if not sys.stderr.isatty():
        return PlainProgress(on_idle)
    from agentflow_jobs.cli.bars import terminal_bars

    return terminal_bars() or PlainProgress(on_idle)
