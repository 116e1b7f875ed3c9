"""Streaming input readers: one record at a time, whatever the file's size.

Every reader yields ``InputItem(index, line, record, error)`` in file order. ``index``
is the 0-based position among items (blank lines are not items); ``line`` is the
1-based line where the item starts. A malformed line or row becomes an item carrying
an ``wire.RowError`` naming that line, so one bad row never stops the job; with
``on_error="fail"`` it raises ``InputError`` naming ``file:line`` instead.
``read_stream`` reads an already open binary file (an upload) the same way.

Formats: ``jsonl`` (one JSON object per line), ``csv`` (header row), ``json`` (one
top-level array, streamed element by element), ``txt`` (one item per line), ``parquet``
(row by row, a batch of a row group at a time: see ``io.parquet``). The one map from file
extensions to formats lives here (``extension_format``).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from agentflow_jobs.errors import InputError
from agentflow_jobs.io.stores import local_path, open_remote
from agentflow_jobs.urls import display_url
from agentflow_jobs.wire import RowError

__all__ = [
    "FORMATS",
    "ROW_BY_ROW",
    "InputItem",
    "detect_format",
    "extension_format",
    "open_input",
    "read_columns",
    "read_items",
    "read_stream",
]

FORMATS = ("jsonl", "csv", "json", "txt", "parquet")
# formats in which a malformed row is that row's error alone: in a JSON array or a
# Parquet file one bad element stops the whole file (InputError), wherever it is
ROW_BY_ROW = ("jsonl", "csv", "txt")
OnError = Literal["skip", "fail"]

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": "json",
    ".txt": "txt",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# bytes that were not UTF-8 survive decoding as lone surrogates, so rows can name them
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_READ_SIZE = 1 << 16
_SNAPSHOT_BYTES = 32 << 20  # an input this small is read whole when its reading begins
# a single JSON array element larger than this is refused rather than buffered forever
_MAX_ELEMENT = 64 << 20


@dataclass(frozen=True, slots=True)
class InputItem:
    """One item read from an input file: a record, or an error naming its line."""

    index: int
    line: int
    record: dict[str, Any] | None
    error: RowError | None = None


def extension_format(path: str | Path) -> str | None:
    """The data format a file's extension names (``.ndjson`` is jsonl), or None."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


def detect_format(path: str | Path) -> str:
    """The input format implied by a file's extension (jsonl when unknown)."""
    return extension_format(path) or "jsonl"


def read_items(
    path: str | Path, *, format: str | None = None, on_error: OnError = "skip"
) -> Iterator[InputItem]:
    """Stream the items of ``path``; malformed ones carry an error (or raise, on_error=fail)."""
    fmt = format or detect_format(path)
    _check_format(fmt)
    handle = _whole_if_small(open_input(path))
    try:
        yield from read_stream(handle, fmt, name=display_url(str(path)), on_error=on_error)
    finally:
        handle.close()


def _whole_if_small(handle: BinaryIO) -> BinaryIO:
    """A local file of up to ``_SNAPSHOT_BYTES`` read whole at once and parsed from memory.

    However long its reader is held (a sync apply reads its input as it sends, for the
    whole run), it then sees the file as it was when reading began: never the second
    half of a file rewritten in place under it, which would tear a line. A larger file
    is streamed as it is.
    """
    if not isinstance(handle, io.BufferedReader):
        return handle
    if os.fstat(handle.fileno()).st_size > _SNAPSHOT_BYTES:
        return handle
    with handle:
        try:
            return io.BytesIO(handle.read())
        except OSError as exc:
            raise InputError(f"cannot read input: {exc.strerror}", path=handle.name) from exc


def open_input(location: str | Path) -> BinaryIO:
    """A local file, or an object-store URL (through fsspec), opened for binary reading."""
    local = local_path(location)
    if local is None:
        return open_remote(str(location))
    try:
        return open(local, "rb")
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror}", path=str(local)) from exc


def read_stream(
    handle: BinaryIO, format: str, *, name: str, on_error: OnError = "skip"
) -> Iterator[InputItem]:
    """Stream the items of an open binary file; errors name it ``name``."""
    _check_format(format)
    for item in _READERS[format](handle, name):
        if item.error is not None and on_error == "fail":
            # the item's message names its line for the errors file; here the path does
            reason = item.error.message.removeprefix(f"line {item.line}: ")
            raise InputError(reason, path=name, line=item.line)
        yield item


def _check_format(format: str) -> None:
    if format not in _READERS:
        raise InputError(f"unknown input format {format!r} (expected one of {', '.join(FORMATS)})")


def read_columns(path: str | Path, *, format: str | None = None) -> list[str] | None:
    """The fields every item of ``path`` has: a CSV file's header (``[]`` when the file is
    empty) or a Parquet file's columns; None for the formats whose fields vary per item."""
    fmt = format or detect_format(path)
    if fmt not in ("csv", "parquet"):
        return None
    name = display_url(str(path))
    try:
        with open_input(path) as handle:
            if fmt == "parquet":
                from agentflow_jobs.io.parquet import parquet_columns

                return parquet_columns(handle, name)
            for item in _read_csv(handle, name, header_only=True):
                return list(item.record or {})
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror or exc}", path=name) from exc
    return []


def _as_record(value: Any) -> dict[str, Any] | RowError:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"content": value}
    kind = type(value).__name__ if value is not None else "null"
    return RowError(code="invalid_input", message=f"each item must be a JSON object or a string, got {kind}")


def _decode_line(raw: bytes, line: int) -> str | RowError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(code="invalid_encoding", message=f"line {line}: not UTF-8 (byte {exc.start + 1})")


def _read_jsonl(handle: BinaryIO, path: str) -> Iterator[InputItem]:
    index = 0
    for line_no, raw in enumerate(handle, start=1):
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if not raw.strip():
            continue
        text = _decode_line(raw, line_no)
        if isinstance(text, RowError):
            yield InputItem(index, line_no, None, text)
        else:
            try:
                parsed = _as_record(json.loads(text))
            except json.JSONDecodeError as exc:
                parsed = RowError(code="invalid_json", message=f"line {line_no}: invalid JSON: {exc.msg}")
            except RecursionError:
                parsed = RowError(code="invalid_json", message=f"line {line_no}: JSON nested too deeply")
            if isinstance(parsed, RowError):
                yield InputItem(index, line_no, None, parsed)
            else:
                yield InputItem(index, line_no, parsed)
        index += 1


def _read_txt(handle: BinaryIO, path: str) -> Iterator[InputItem]:
    index = 0
    for line_no, raw in enumerate(handle, start=1):
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        text = _decode_line(raw.rstrip(b"\r\n"), line_no)
        if isinstance(text, str) and not text.strip():
            continue
        if isinstance(text, RowError):
            yield InputItem(index, line_no, None, text)
        else:
            yield InputItem(index, line_no, {"content": text})
        index += 1


def _surrogate_lines(handle: BinaryIO) -> Iterator[str]:
    for line_no, raw in enumerate(handle, start=1):
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        yield raw.decode("utf-8", errors="surrogateescape")


def _read_csv(handle: BinaryIO, path: str, *, header_only: bool = False) -> Iterator[InputItem]:
    """CSV rows as items; ``header_only`` yields the header once, as an item's keys."""
    # a cell may hold a long document, as a JSON element may (Python's default is 128 KiB,
    # a process-wide setting: only ever raised here)
    if csv.field_size_limit() < _MAX_ELEMENT:
        csv.field_size_limit(_MAX_ELEMENT)
    reader = csv.reader(_surrogate_lines(handle), strict=True)
    header: list[str] | None = None
    index = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if header is None:
                raise InputError(f"malformed CSV header: {exc}", path=path, line=start) from exc
            yield InputItem(index, start, None, RowError(code="invalid_csv", message=f"line {start}: {exc}"))
            index += 1
            continue
        if header is None:
            if not any(cell.strip() for cell in row):
                continue  # blank lines before the header
            if _NOT_UTF8.search(",".join(row)):
                raise InputError("header is not UTF-8", path=path, line=start)
            header = _header(row, path, start)
            if header_only:
                yield InputItem(0, start, dict.fromkeys(header))
                return
            continue
        if not row or all(not cell.strip() for cell in row):
            continue
        yield _csv_item(header, row, index, start)
        index += 1


def _header(row: list[str], path: str, line: int) -> list[str]:
    """The column names; two columns of one name would leave one unread, unsaid."""
    header = [name.strip() for name in row]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, 1):
        if name and name in seen:
            raise InputError(f"the header names column {name!r} twice (columns {seen[name]} and {position}): "
                             "rename one, or it is not clear which to read", path=path, line=line)
        seen.setdefault(name, position)
    return header


def _csv_item(header: list[str], row: list[str], index: int, line: int) -> InputItem:
    if len(row) != len(header):
        message = f"line {line}: row has {len(row)} fields, header has {len(header)}"
        return InputItem(index, line, None, RowError(code="invalid_csv", message=message))
    if any(_NOT_UTF8.search(cell) for cell in row):
        return InputItem(
            index, line, None, RowError(code="invalid_encoding", message=f"line {line}: not UTF-8")
        )
    return InputItem(index, line, dict(zip(header, row, strict=True)))


def _read_json(handle: BinaryIO, path: str) -> Iterator[InputItem]:
    from agentflow_jobs.io.json_array import read_json_array

    return read_json_array(handle, path)


def _read_parquet(handle: BinaryIO, path: str) -> Iterator[InputItem]:
    # pyarrow loads on first use: the other formats (and the CLI's start) never pay for it
    from agentflow_jobs.io.parquet import read_parquet

    return read_parquet(handle, path)


_READERS: dict[str, Callable[[BinaryIO, str], Iterator[InputItem]]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "json": _read_json,
    "txt": _read_txt,
    "parquet": _read_parquet,
}
