"""A batch's whole output as text: ``json`` (one array), ``jsonl`` or ``csv``.

Rows are read from the store a slice at a time and leave as text chunks, so an export
of any size holds only a slice in memory. CSV flattens each row to ``index, id,
status``, one column per result key and ``error_code, error_message``; its cells
are written by ``io.writers.csv_cell``, the same cells as a runner's CSV output file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Literal, get_args

from agentflow_jobs.engine.store import BatchStore
from agentflow_jobs.errors import status_error
from agentflow_jobs.io import csv_cell

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_chunks"]

ExportFormat = Literal["json", "jsonl", "csv"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
# rows per CSV chunk: large enough to stream efficiently, small enough to stay flat
_CSV_CHUNK_ROWS = 200


def export_chunks(store: BatchStore, batch_id: str, fmt: str) -> Iterator[str]:
    """The output of ``batch_id`` as text chunks in ``fmt``; 422 for another format."""
    if fmt not in EXPORT_FORMATS:
        raise status_error(422, f"format: expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        return _csv_chunks(store, batch_id)
    if fmt == "json":
        return _json_chunks(store, batch_id)
    return (json.dumps(row, ensure_ascii=False) + "\n" for row in store.iter_results(batch_id))


def _csv_chunks(store: BatchStore, batch_id: str) -> Iterator[str]:
    # first pass only collects result keys, so no row is held in memory
    keys: dict[str, None] = {}
    for row in store.iter_results(batch_id):
        keys.update(dict.fromkeys(row.get("result") or {}))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "id", "status", *keys, "error_code", "error_message"])
    for n, row in enumerate(store.iter_results(batch_id), start=1):
        result, error = row.get("result") or {}, row.get("error") or {}
        cells = [row["index"], row.get("id"), row["status"], *(result.get(k) for k in keys),
                 error.get("code"), error.get("message")]
        writer.writerow([csv_cell(cell) for cell in cells])
        if n % _CSV_CHUNK_ROWS == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _json_chunks(store: BatchStore, batch_id: str) -> Iterator[str]:
    yield "["
    for n, row in enumerate(store.iter_results(batch_id)):
        yield ("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"
