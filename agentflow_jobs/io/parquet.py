"""Parquet input and output (pyarrow), streamed so memory stays flat.

Reading goes batch by batch through the file's row groups (``iter_batches``): at most one
batch of rows is in memory whatever the file's size. An item's ``line`` is its 1-based row
number. Values JSON cannot carry are made plain: timestamps and dates as ISO text,
decimals as numbers, bytes as UTF-8 text (base64 when they are not UTF-8).

Writing buffers at most ``row_group_size`` rows, then writes them as one row group, so a
million-row output holds one group at a time. The columns and their kinds come first
(see ``io.columns``): string → ``string``, integer → ``int64``, number → ``double``,
boolean → ``bool``; nested values are JSON text in a string column. The file goes to an
atomic target's binary stream (see ``io.writers.AtomicFile``).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from agentflow_jobs.errors import InputError
from agentflow_jobs.io.columns import ColumnKind, cell
from agentflow_jobs.io.readers import InputItem

__all__ = ["ROW_GROUP_SIZE", "ParquetRowWriter", "parquet_columns", "read_parquet"]

ROW_GROUP_SIZE = 10_000
_BATCH = 1024
_READ_BUFFER = 1 << 16
_ARROW: dict[ColumnKind, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def _open(handle: BinaryIO, name: str) -> pq.ParquetFile:
    try:
        # read in small buffered pieces, not a whole row group's column chunks at once
        return pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_BUFFER)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", path=name) from None


def parquet_columns(handle: BinaryIO, name: str) -> list[str]:
    """The column names of a Parquet file (from its footer; no rows are read)."""
    return list(_open(handle, name).schema_arrow.names)


def read_parquet(handle: BinaryIO, name: str) -> Iterator[InputItem]:
    """Every row of a Parquet file as an item, in file order."""
    parquet = _open(handle, name)
    index = 0
    try:
        # one thread: decoding threads each keep their own buffers (memory, not speed, matters)
        for batch in parquet.iter_batches(batch_size=_BATCH, use_threads=False):
            for record in batch.to_pylist():
                yield InputItem(index, index + 1, {k: _plain(v) for k, v in record.items()})
                index += 1
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"unreadable Parquet data after row {index} ({exc})", path=name) from None


def _plain(value: Any) -> Any:
    """A value JSON can carry (prompts and ledger keys are JSON)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class ParquetRowWriter:
    """Writes rows to a Parquet stream in row groups of at most ``row_group_size`` rows."""

    def __init__(
        self,
        stream: BinaryIO,
        kinds: Mapping[str, ColumnKind],
        *,
        row_group_size: int = ROW_GROUP_SIZE,
    ) -> None:
        self._kinds = dict(kinds)
        self._schema = pa.schema([(name, _ARROW[kind]) for name, kind in self._kinds.items()])
        self._writer = pq.ParquetWriter(stream, self._schema)
        self._size = row_group_size
        # buffered column by column: a list per column is far lighter than a dict per row
        self._columns: dict[str, list[Any]] = {name: [] for name in self._kinds}
        self._count = 0

    def write(self, row: Mapping[str, Any]) -> None:
        for name, kind in self._kinds.items():
            self._columns[name].append(cell(kind, row.get(name)))
        self._count += 1
        if self._count >= self._size:
            self._flush()

    def _flush(self) -> None:
        if self._count:
            table = pa.Table.from_pydict(self._columns, schema=self._schema)
            self._writer.write_table(table, row_group_size=self._size)
            self._columns = {name: [] for name in self._kinds}
            self._count = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
