"""Atomic, streaming output writers (jsonl, csv, json).

A reader of the output path sees either the previous complete file or the new complete
file, never a half-written one: rows go to a temporary file in the same folder, which
is flushed, fsynced and renamed over the target, and then the folder is fsynced so the
rename itself survives a power loss. Rows are written one at a time (memory stays flat).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol

from agentflow_jobs.errors import OutputError

__all__ = [
    "OUTPUT_FORMATS",
    "AtomicFile",
    "RowWriter",
    "csv_cell",
    "open_row_writer",
    "write_rows",
]

OUTPUT_FORMATS = ("jsonl", "csv", "json")


# one encoder for every row: json.dumps with options builds a new one per call
_strict = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False).encode


def _dumps(value: Any) -> str:
    """JSON text any parser reads: a NaN or infinity (pandas' missing value in a Parquet
    input, say) is written as null, not as the ``NaN`` strict parsers refuse."""
    try:
        return _strict(value)
    except ValueError:  # rare: only a row holding one pays for the second pass
        return _strict(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _writer_alive(suffix: str) -> bool:
    """Whether the process named in a temp file's ``PID.TOKEN.tmp`` suffix still runs."""
    pid = suffix.split(".", 1)[0]
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # another writer of this process: it cleans up after itself
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class AtomicFile:
    """A text file that replaces ``path`` only when committed; else it vanishes.

    Missing parent folders are made unless ``make_parents`` is False (then opening
    raises ``FileNotFoundError``, as ``open`` would).
    """

    def __init__(self, path: str | Path, *, make_parents: bool = True) -> None:
        self.path = Path(path)
        if make_parents:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # unique per writer: two writers of one path (SDK downloads) never share a temp file
        self.temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        # ``stream`` is the binary side (Parquet), ``handle`` the text side over it
        self.stream: BinaryIO = open(self.temp, "wb")  # noqa: SIM115 - closed in commit/abort
        self.handle: IO[str] = io.TextIOWrapper(self.stream, encoding="utf-8", newline="")

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.stream.fileno())
        self.handle.close()
        os.replace(self.temp, self.path)
        _fsync_dir(self.path.parent)
        self._clean_stale()

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()
        self._clean_stale()

    def _clean_stale(self) -> None:
        """Temp files of writers killed mid-write (the caller owns this path now)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            if not _writer_alive(stale.name.removeprefix(f".{self.path.name}.")):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RowWriter(Protocol):
    """Writes output rows (dicts) to an atomic file, in the order given."""

    def write(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class _JsonlWriter:
    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def write(self, row: Mapping[str, Any]) -> None:
        self._handle.write(_dumps(row))
        self._handle.write("\n")

    def close(self) -> None:
        return None


class _JsonWriter:
    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._first = True
        handle.write("[")

    def write(self, row: Mapping[str, Any]) -> None:
        self._handle.write("\n" if self._first else ",\n")
        self._handle.write(_dumps(row))
        self._first = False

    def close(self) -> None:
        self._handle.write("]\n" if self._first else "\n]\n")


def csv_cell(value: Any) -> str:
    """A CSV cell: strings as they are, nested values as JSON, null as empty.

    The one cell format of the package: output files and batch exports both use it.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _dumps(value)


class _CsvWriter:
    """CSV needs its columns up front: the caller passes them (see ``columns_of``)."""

    def __init__(self, handle: IO[str], columns: list[str]) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._columns = columns
        self._writer.writerow(columns)

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow([csv_cell(row.get(name)) for name in self._columns])

    def close(self) -> None:
        return None


def open_row_writer(
    handle: IO[str], format: str, *, columns: Iterable[str] | None = None
) -> RowWriter:
    """A row writer for ``format`` on an open (atomic) text handle."""
    if format == "jsonl":
        return _JsonlWriter(handle)
    if format == "json":
        return _JsonWriter(handle)
    if format == "csv":
        return _CsvWriter(handle, list(columns or []))
    raise OutputError(
        f"unknown output format {format!r} (expected one of {', '.join(OUTPUT_FORMATS)})"
    )


def write_rows(
    path: str | Path,
    format: str,
    rows: Iterator[dict[str, Any]],
    *,
    columns: Iterable[str] | None = None,
) -> int:
    """Write ``rows`` to ``path`` atomically; returns how many were written."""
    count = 0
    with AtomicFile(path) as out:
        writer = open_row_writer(out.handle, format, columns=columns)
        for row in rows:
            writer.write(row)
            count += 1
        writer.close()
    return count
