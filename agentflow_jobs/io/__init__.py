"""Streaming input readers and atomic output writers.

Local files and object-store URLs (``stores``: fsspec), in jsonl, csv, json, txt and
Parquet (``parquet``, loaded on first use); SQL table outputs live in ``tables``.
"""

from __future__ import annotations

from agentflow_jobs.io.readers import (
    FORMATS,
    ROW_BY_ROW,
    InputItem,
    detect_format,
    extension_format,
    open_input,
    read_columns,
    read_items,
    read_stream,
)
from agentflow_jobs.io.stores import AtomicObject, open_atomic, remote_fingerprint
from agentflow_jobs.io.writers import (
    OUTPUT_FORMATS,
    AtomicFile,
    RowWriter,
    csv_cell,
    open_row_writer,
    write_rows,
)

__all__ = [
    "FORMATS",
    "OUTPUT_FORMATS",
    "ROW_BY_ROW",
    "AtomicFile",
    "AtomicObject",
    "InputItem",
    "RowWriter",
    "csv_cell",
    "detect_format",
    "extension_format",
    "open_atomic",
    "open_input",
    "open_row_writer",
    "read_columns",
    "read_items",
    "read_stream",
    "remote_fingerprint",
    "write_rows",
]
