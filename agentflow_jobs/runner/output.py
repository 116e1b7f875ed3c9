"""Writing a job's output and errors files from the ledger, in input order.

Each input item's row is looked up by its ledger key, so the output never needs every
row in memory and always reflects exactly the input: items removed from it disappear
from the output, duplicates share one answer. The items are those the apply's plan
rendered (up to 10,000, so the output is of the input the apply fingerprinted), else
the input streamed again.
Both files are atomic (see ``io.writers``). CSV and Parquet need their columns (Parquet
also their kinds, see ``io.columns``) before the first row, so they take one extra
streaming pass to collect them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from agentflow_jobs.errors import InputError, OutputError
from agentflow_jobs.io import AtomicFile, RowWriter, open_atomic, open_input, open_row_writer
from agentflow_jobs.io.columns import ColumnKind, declared_kinds, observe, widen
from agentflow_jobs.runner.crash import crash_point
from agentflow_jobs.runner.items import RenderedItem, blocks, job_items
from agentflow_jobs.runner.job import Job
from agentflow_jobs.runner.ledger import Ledger, LedgerEntry
from agentflow_jobs.runner.state import State
from agentflow_jobs.spec import JobSpec

__all__ = ["OutputSummary", "write_output"]

_PROVENANCE = ("_job", "_model", "_mode", "_attempts", "_total_tokens", "_spec_hash", "_run_id")
# formats whose rows are flat columns, known before the first row
_FLAT = ("csv", "parquet", "table")
# an unparsable line longer than this is cut in the errors file (it may be megabytes)
_RAW_LIMIT = 10_000


@dataclass
class OutputSummary:
    """Counts from one pass over the input, as written."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    input_errors: int = 0
    retryable: int = 0
    missing: int = 0
    tokens: int = 0
    first_input_error: str = ""  # what the first item that could not be sent says


    @property
    def failure_rate(self) -> float:
        answered = self.completed + self.failed + self.input_errors
        return (self.failed + self.input_errors) / answered if answered else 0.0


Joined = tuple[RenderedItem, LedgerEntry | None]


def _joined(
    job: Job, ledger: Ledger, items: Sequence[RenderedItem] | None, known: Mapping[str, LedgerEntry]
) -> Iterator[Joined]:
    """Each input item with its ledger entry: ``items`` if given, else the input read
    again; entries in ``known`` are not read back."""
    for block in blocks(iter(items) if items is not None else job_items(job)):
        found = ledger.lookup([r.key for r in block if r.key is not None and r.key not in known])
        for rendered in block:
            key = rendered.key
            yield rendered, (found.get(key) or known.get(key)) if key else None


class _Rows:
    """Builds output rows for one job (what every row shares is worked out once)."""

    def __init__(self, job: Job) -> None:
        out = job.spec.output
        self.include_input = out.include_input
        # the input's own `id` is the row's id only when it is the job's id_field; else it
        # is data, kept as `input.id` in flat outputs (the row's `id` holds the other)
        self.input_id_column = job.spec.input.id_field != "id"
        self.provenance = (
            {"job": job.name, "model": job.model_identity, "spec_hash": job.spec.spec_hash}
            if out.include_provenance
            else None
        )

    def row(self, rendered: RenderedItem, entry: LedgerEntry) -> dict[str, Any]:
        row: dict[str, Any] = {"id": rendered.id}
        if self.include_input:
            row["input"] = rendered.record
        row["result"] = entry.row["result"]
        if self.provenance is not None:
            row["provenance"] = {
                **self.provenance,
                "run_id": entry.run_id,
                "mode": entry.mode,
                "attempts": entry.attempts,
                "usage": entry.row["usage"],
            }
        return row


def _flat(row: dict[str, Any], input_id_column: bool) -> dict[str, Any]:
    """A CSV row: input fields and result fields as columns, provenance as ``_x``; the
    input's own ``id`` as ``input.id`` when it is not the row's (``_Rows.input_id_column``)."""
    flat: dict[str, Any] = {"id": row["id"]}
    for name, value in (row.get("input") or {}).items():
        if name != "id":
            flat[name] = value
        elif input_id_column:
            flat["input.id"] = value
    for name, value in (row.get("result") or {}).items():
        flat[f"result.{name}" if name in flat else name] = value
    prov = row.get("provenance")
    if prov:
        values = (
            prov["job"],
            prov["model"],
            prov["mode"],
            prov["attempts"],
            (prov.get("usage") or {}).get("total_tokens", 0),
            prov["spec_hash"],
            prov["run_id"],
        )
        flat.update(zip(_PROVENANCE, values, strict=True))
    return flat


class _RawLines:
    """The input's raw text by line number, for items that could not be parsed.

    Errors come in input order, so one forward pass over the file (opened only when
    the first unparsable item turns up) serves them all.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: BinaryIO | None = None
        self.line = 0

    def get(self, line: int) -> str | None:
        try:
            raw = self._advance(line)
        except (OSError, InputError):  # the input changed under us: the row still says which line
            return None
        if raw is None:
            return None
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "…"

    def _advance(self, line: int) -> bytes | None:
        if self.handle is None or line <= self.line:
            self.close()
            self.handle, self.line = open_input(self.path), 0
        raw = b""
        while self.line < line:
            raw = self.handle.readline()
            if not raw:
                return None
            self.line += 1
        return raw

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _error_row(rendered: RenderedItem, entry: LedgerEntry | None, raw: _RawLines) -> dict[str, Any]:
    error = rendered.error
    code, message = (error.code, error.message) if error else ("failed", "")
    failure = entry.row["error"] if entry is not None else None
    if failure:
        code, message = str(failure.get("code", code)), str(failure.get("message", ""))
    # what failed, so users need not open the input: the record, else the raw line
    shown = rendered.record if rendered.record is not None else raw.get(rendered.line)
    return {
        "id": rendered.id,
        "index": rendered.index,
        "line": rendered.line,
        "code": code,
        "message": message,
        "input": shown,
    }


def _columns(job: Job, joined: Iterator[Joined]) -> dict[str, ColumnKind]:
    """The flat columns of the output and their kinds (one streaming pass): the result
    fields' kinds are the job's own, the others are those of their values."""
    spec = job.spec
    declared = declared_kinds(spec.operation_kind, spec.fields)
    kinds: dict[str, ColumnKind | None] = {"id": None}
    rows = _Rows(job)
    for rendered, entry in joined:
        if entry is not None and entry.status == "completed":
            observe(kinds, _flat(rows.row(rendered, entry), rows.input_id_column))
    for name, kind in declared.items():
        column = f"result.{name}" if f"result.{name}" in kinds else name
        if column in kinds:
            kinds[column] = widen(kind, kinds[column])
    return {name: kind or "string" for name, kind in kinds.items()}


def write_output(
    job: Job,
    state: State,
    *,
    keep_output: bool = False,
    items: Sequence[RenderedItem] | None = None,
    known: Mapping[str, LedgerEntry] | None = None,
) -> OutputSummary:
    """Write the output and errors files for ``job`` from the ledger; returns the counts.

    ``keep_output`` leaves the output file as it is (a run that got no answers must not
    replace good rows); the counts and the errors file are still those of the ledger.
    ``items``: the input's items as this apply planned them (the input is read again
    without them), so the output is of the input the apply fingerprinted. ``known``: the
    entries this apply recorded for keys new to the ledger (``first_entry``), which are
    not read back: 10,000 rows read back and parsed cost ~65 ms after the last answer.
    A file that cannot be written (a directory in the way, a full disk, no permission) is
    an OutputError naming it; the ledger keeps every result for the next attempt.
    """
    try:
        return _write_output(job, state, keep_output=keep_output, items=items, known=known or {})
    except OSError as exc:
        raise OutputError(
            f"cannot write the output ({exc.strerror or exc}); the results are kept in the "
            "state file and written by the next apply",
            path=job.spec.output_display,
        ) from None


class _Discard:
    """The row writer of an output that is kept as it is."""

    def write(self, row: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


class _Target(Protocol):
    """Where the output goes: an atomic file, or a table in its transaction."""

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def _open_output(spec: JobSpec, columns: dict[str, ColumnKind]) -> tuple[_Target, RowWriter]:
    """The output target of ``spec`` and the writer of its rows (heavy modules only when used)."""
    if spec.output_format == "table":
        from agentflow_jobs.io.tables import TableWriter

        table = TableWriter(
            spec.output_location, spec.output.table or "", columns, write=spec.output.write
        )
        return table, table
    out = open_atomic(spec.output_location)
    if spec.output_format == "parquet":
        from agentflow_jobs.io.parquet import ParquetRowWriter

        return out, ParquetRowWriter(out.stream, columns)
    return out, open_row_writer(out.handle, spec.output_format, columns=columns)


class _Files:
    """The output and errors files of one write, committed together or not at all."""

    def __init__(self, job: Job, keep_output: bool, joined: Callable[[], Iterator[Joined]]) -> None:
        spec = job.spec
        fmt = spec.output_format
        flat = fmt in _FLAT and not keep_output
        self.columns = _columns(job, joined()) if flat else None
        self.spec, self.keep_output = spec, keep_output
        self.out: _Target | None = None
        self.errors = AtomicFile(spec.errors_path)
        self.errors_path = spec.errors_path
        self.format = fmt
        self.raw = _RawLines(spec.input_location)
        self.writer: RowWriter = _Discard()
        self.error_writer: RowWriter = _Discard()
        self.rows = _Rows(job)

    def open(self) -> None:
        if not self.keep_output:
            self.out, self.writer = _open_output(self.spec, self.columns or {})
        self.error_writer = open_row_writer(self.errors.handle, "jsonl")

    def write(self, rendered: RenderedItem, entry: LedgerEntry | None, summary: OutputSummary) -> None:
        """Write one item's row (or error row) and count it."""
        summary.total += 1
        if entry is not None and entry.status == "completed":
            if self.out is not None:
                row = self.rows.row(rendered, entry)
                self.writer.write(_flat(row, self.rows.input_id_column) if self.columns is not None else row)
            summary.completed += 1
            summary.tokens += int(entry.row["usage"].get("total_tokens") or 0)
        elif rendered.key is None or entry is not None:
            error = _error_row(rendered, entry, self.raw)
            self.error_writer.write(error)
            if entry is None and not summary.first_input_error:
                summary.first_input_error = str(error["message"])
            summary.failed += entry is not None
            summary.retryable += entry is not None and entry.status == "retryable"
            summary.input_errors += entry is None
        else:
            summary.missing += 1

    def abort(self) -> None:
        if self.out is not None:
            self.out.abort()
        self.errors.abort()

    def commit(self, summary: OutputSummary) -> None:
        if self.out is not None:
            try:
                self.out.commit()
            except BaseException:  # a table's commit can fail: the errors file goes with it
                self.errors.abort()
                raise
        if summary.failed or summary.input_errors:
            self.errors.commit()
            return
        self.errors.abort()
        if self.out is not None:  # a kept output keeps the errors file that goes with it
            with contextlib.suppress(FileNotFoundError):
                self.errors_path.unlink()


def _write_output(
    job: Job,
    state: State,
    *,
    keep_output: bool,
    items: Sequence[RenderedItem] | None,
    known: Mapping[str, LedgerEntry],
) -> OutputSummary:
    ledger = Ledger(state)

    def joined() -> Iterator[Joined]:
        return _joined(job, ledger, items, known)

    files = _Files(job, keep_output, joined)
    summary = OutputSummary()
    try:
        files.open()
        for rendered, entry in joined():
            files.write(rendered, entry, summary)
            if summary.total == 1 or summary.total % 500 == 0:
                crash_point("mid_output_write")
        files.writer.close()
    except BaseException:
        files.abort()
        raise
    finally:
        files.raw.close()
    files.commit(summary)
    return summary
