"""Watch mode: a reconcile loop that keeps outputs in step with specs and their inputs.

``Watcher.run()`` applies everything out of date once (re-attaching batches in flight),
then waits on ``watchfiles`` for changes under the spec directories and the directories
of every file the specs reference (inputs, prompt files, outputs). Events only wake the
loop: once a burst has been quiet for ``debounce_ms``, the specs are reloaded from disk
and the fingerprints of the tracked files are compared with the last reconcile, so an
event lost while the watcher restarts, or a file written in several steps, is never
acted on half-seen. Only jobs whose spec, referenced files or output changed run, plus
the jobs downstream of them.

Specs are loaded file by file: one broken file is logged (``path:line:col``) and its
jobs wait until it is fixed; the jobs of the other files still run. A failing job is
logged and retried at the next reconcile. The caller holds the ``Workspace`` (the state
lock) for the watcher's whole life, and every apply goes through the runner, whose
recorded batches make sure a chunk in flight is never submitted again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import watchfiles

from agentflow_jobs.errors import AgentFlowError, Problem
from agentflow_jobs.runner import (
    Job,
    JobReport,
    NullProgress,
    Progress,
    Workspace,
    apply_jobs,
    blocked_by_upstream,
)
from agentflow_jobs.runner.fingerprints import file_fingerprint, job_fingerprint
from agentflow_jobs.runner.plan import order_jobs, upstream_of
from agentflow_jobs.spec import JobSpec, discover_spec_files, find_root, load_tolerant
from agentflow_jobs.spec.rules import display_path

__all__ = ["DEFAULT_DEBOUNCE_MS", "ReconcileReport", "Watcher"]

log = structlog.get_logger()

DEFAULT_DEBOUNCE_MS = 400
# how long watchfiles waits for a burst's next event before handing it over
_STEP_MS = 50
# outcomes worth another try at the next reconcile, even when nothing about the job changed
_RETRY = ("error", "incomplete", "skipped")

Fingerprints = dict[Path, str | None]


@dataclass
class ReconcileReport:
    """One reconcile: what changed on disk, which jobs ran and how they ended."""

    changed: list[str] = field(default_factory=list)
    jobs: list[JobReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """Like apply's: 130 interrupted, else the worst of 3 (invalid spec) and the jobs'."""
        if self.interrupted:
            return 130
        codes = [job.exit_code for job in self.jobs] + [3 if self.problems else 0]
        return max(codes)


class _ApplyStop(threading.Event):
    """The stop event of one apply: set by a signal (the watcher's stop) or by the runner.

    Whatever the runner does with its stop event (it may set it to abandon one apply
    after a failed request), that ends the one apply, never the watch loop.
    """

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self._parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self._parent.is_set()


class Watcher:
    """Keeps the outputs of the specs under ``paths`` in step, in one held workspace."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        workspace: Workspace,
        root: Path | None = None,
        mode: str | None = None,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        force_polling: bool | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.workspace = workspace
        self.root = find_root(root)
        self.mode = mode
        self.debounce_ms = max(1, debounce_ms)
        self.progress = progress or NullProgress()
        self.stop = stop or threading.Event()
        self.force_polling = force_polling
        self._fingerprints: Fingerprints = {}
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._logged_problems: set[str] = set()
        self._default_filter = watchfiles.DefaultFilter()
        # a state file's folder changes on every commit; a PostgreSQL state has none
        self._state_dir = str(workspace.path.resolve().parent) if workspace.path else "\0"

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        """Reconcile everything once, then on every settled change until ``stop`` is set."""
        self.reconcile(initial=True)
        while not self.stop.is_set():
            self._watch(self.watch_dirs())
        log.info("watch stopped")

    def _watch(self, dirs: list[Path]) -> None:
        """Wait for changes under ``dirs``; return when the set of directories changes."""
        log.info("watching", dirs=[display_path(d) for d in dirs])
        # compare fingerprints once at the start: changes while no watcher ran are not lost
        pending = True
        for changes in watchfiles.watch(
            *dirs,
            watch_filter=self._interesting,
            step=_STEP_MS,
            rust_timeout=self.debounce_ms,
            yield_on_timeout=True,
            stop_event=self.stop,
            force_polling=self.force_polling,
        ):
            if changes:
                pending = True  # a burst is going on: wait until it has been quiet
                continue
            if not pending:
                continue
            pending = False
            self.reconcile()
            if self.stop.is_set() or self.watch_dirs() != dirs:
                return

    def _interesting(self, change: watchfiles.Change, path: str) -> bool:
        # the state file changes with every ledger commit; it never concerns a spec
        return not path.startswith(self._state_dir) and self._default_filter(change, path)

    def watch_dirs(self) -> list[Path]:
        """Spec directories plus the existing directories of every tracked file, minimal."""
        wanted: set[Path] = set()
        for path in self.paths:
            resolved = path.resolve()
            wanted.add(resolved if resolved.is_dir() else resolved.parent)
        wanted |= {p.parent for p in self._fingerprints if p.parent.is_dir()}
        # watching is recursive, so a directory inside another one adds nothing
        return sorted(d for d in wanted if not any(o != d and d.is_relative_to(o) for o in wanted))

    # -- one reconcile ----------------------------------------------------------------

    def reconcile(self, *, initial: bool = False) -> ReconcileReport | None:
        """Reload, apply what changed (everything when ``initial``); None if nothing did."""
        started = time.monotonic()
        try:
            files = discover_spec_files(self.paths)
        except AgentFlowError as exc:
            if initial:
                raise
            log.error("cannot list spec files", reason=str(exc))
            return None
        # fingerprints before reading: a write during the load shows up at the next compare
        now: Fingerprints = {f: file_fingerprint(f) for f in files}
        found = load_tolerant(files, self.root)
        specs, jobs = self._jobs(found.specs)
        for path in _tracked(specs, found.referenced):
            now.setdefault(path, file_fingerprint(path))
        before, self._fingerprints = self._fingerprints, now
        changed = _changed(before, now)
        if not initial and not changed:
            return None
        report = ReconcileReport(changed=[display_path(p) for p in changed], problems=found.problems)
        self._log_problems(found.problems)
        signatures = {job.name: _signature(specs[job.name], job, now) for job in jobs}
        selected = {job.name for job in jobs if initial or self._signatures.get(job.name) != signatures[job.name]}
        self._apply(jobs, specs, _with_downstream(selected, jobs), report)
        self._remember(jobs, specs, report)
        report.seconds = round(time.monotonic() - started, 3)
        log.info(
            "reconcile",
            initial=initial,
            changed=report.changed,
            jobs=[job.name for job in report.jobs],
            outcome={job.name: job.status for job in report.jobs},
            invalid=sorted({problem.path for problem in found.problems}),
            interrupted=report.interrupted,
            seconds=report.seconds,
        )
        return report

    def _jobs(self, specs: Iterable[JobSpec]) -> tuple[dict[str, JobSpec], list[Job]]:
        """The runner's jobs in dependency order; a spec the runner refuses is logged."""
        by_name: dict[str, JobSpec] = {}
        jobs: list[Job] = []
        for spec in specs:
            try:
                jobs.append(Job.from_spec(spec))
            except Exception as exc:  # one job the runner cannot take must not stop the others
                log.error("job failed", job=spec.name, location=_location(spec), reason=str(exc))
                continue
            by_name[spec.name] = spec
        return by_name, order_jobs(jobs)

    def _log_problems(self, problems: list[Problem]) -> None:
        """Each problem once while it lasts; again if it comes back after a fix."""
        current = {str(problem) for problem in problems}
        for problem in problems:
            if str(problem) not in self._logged_problems:
                log.error(
                    "invalid spec",
                    location=f"{problem.path}:{problem.line}:{problem.column}",
                    reason=problem.message,
                    hint=problem.hint,
                    job=problem.job,
                )
        self._logged_problems = current

    def _apply(
        self, jobs: list[Job], specs: dict[str, JobSpec], selected: set[str], report: ReconcileReport
    ) -> None:
        finished: dict[str, JobReport] = {}
        for job in jobs:
            if job.name not in selected:
                continue
            if self.stop.is_set():
                report.interrupted = True
                return
            result = blocked_by_upstream(job, jobs, finished) or self._apply_job(job, specs[job.name])
            finished[job.name] = result
            report.jobs.append(result)
        report.interrupted = self.stop.is_set()

    def _apply_job(self, job: Job, spec: JobSpec) -> JobReport:
        stop = _ApplyStop(self.stop)
        try:
            applied = apply_jobs(
                [job], state=self.workspace, mode=self.mode, stop=stop, progress=self.progress
            )
            result = applied.jobs[0] if applied.jobs else None
        except AgentFlowError as exc:
            result = _error_report(job, str(exc), exc.exit_code)
        except Exception as exc:  # a bug met by one job is logged; the loop goes on
            log.exception("job crashed", job=job.name)
            result = _error_report(job, f"{type(exc).__name__}: {exc}", 1)
        if result is None:  # stopped before it started
            result = JobReport(name=job.name, status="incomplete", output=job.spec.output_display)
        if result.status in ("failed", "error", "over_budget"):
            log.error("job failed", job=job.name, location=_location(spec), reason=result.message)
        return result

    def _remember(self, jobs: list[Job], specs: dict[str, JobSpec], report: ReconcileReport) -> None:
        """Take in the outputs the apply wrote, so they are not mistaken for user edits."""
        ran = {result.name: result.status for result in report.jobs}
        for job in jobs:
            if job.name in ran:
                for path in (job.output_path, job.errors_path):
                    if path in self._fingerprints:
                        self._fingerprints[path] = file_fingerprint(path)
        signatures = {job.name: _signature(specs[job.name], job, self._fingerprints) for job in jobs}
        # a job that did not finish is tried again at the next reconcile
        self._signatures = {
            name: signature for name, signature in signatures.items() if ran.get(name) not in _RETRY
        }
        if report.interrupted:
            self._signatures = {k: v for k, v in self._signatures.items() if k not in ran}


def _changed(before: Fingerprints, now: Fingerprints) -> list[Path]:
    """Tracked files that changed; a file no longer tracked counts only if it changed too."""
    paths = [p for p in now if before.get(p) != now[p]]
    paths += [p for p in before.keys() - now.keys() if file_fingerprint(p) != before[p]]
    return sorted(paths)


def _tracked(specs: dict[str, JobSpec], referenced: set[Path]) -> list[Path]:
    paths = list(referenced)
    for spec in specs.values():
        paths += [*spec.referenced_files(), spec.output_path]
    return paths


def _signature(spec: JobSpec, job: Job, fingerprints: Fingerprints) -> tuple[Any, ...]:
    """Everything whose change means the job must be applied again."""
    files = tuple((str(p), fingerprints.get(p)) for p in spec.referenced_files())
    return (str(spec.source), job_fingerprint(job), files, fingerprints.get(spec.output_path))


def _with_downstream(selected: set[str], jobs: list[Job]) -> set[str]:
    """``selected`` plus every job fed (transitively) by their outputs."""
    result = set(selected)
    for job in jobs:  # dependency order: an upstream job is decided before its consumers
        upstream = upstream_of(job, jobs)
        if upstream is not None and upstream.name in result:
            result.add(job.name)
    return result


def _location(spec: JobSpec) -> str:
    return f"{display_path(spec.source)}:{spec.line}"


def _error_report(job: Job, message: str, exit_code: int) -> JobReport:
    return JobReport(
        name=job.name,
        status="error",
        output=job.spec.output_display,
        message=message,
        exit_code=exit_code,
    )
