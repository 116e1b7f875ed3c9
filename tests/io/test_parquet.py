"""Parquet input and output: typed columns, row-group streaming, located errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentflow_jobs.errors import InputError
from agentflow_jobs.io import AtomicFile, read_columns, read_items
from agentflow_jobs.io.parquet import ParquetRowWriter
from tests.runner.conftest import Workspace, reviews


def _write(path: Path, rows: list[dict[str, Any]], kinds: dict[str, Any], size: int = 10_000) -> None:
    with AtomicFile(path) as out:
        writer = ParquetRowWriter(out.stream, kinds, row_group_size=size)
        for row in rows:
            writer.write(row)
        writer.close()


def test_rows_round_trip_with_their_types(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "content": "a", "score": 0.5, "ok": True, "tags": ["x", "y"]},
        {"id": 2, "content": "b", "score": None, "ok": False, "tags": []},
    ]
    kinds = {"id": "integer", "content": "string", "score": "number", "ok": "boolean", "tags": "string"}
    _write(tmp_path / "t.parquet", rows, kinds)
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert [schema.field(n).type for n in kinds] == [
        pa.int64(), pa.string(), pa.float64(), pa.bool_(), pa.string()
    ]
    items = list(read_items(tmp_path / "t.parquet"))
    # nested values are stored as JSON text in a string column
    assert [i.record for i in items] == [
        {**rows[0], "tags": '["x","y"]'},
        {**rows[1], "tags": "[]"},
    ]
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 2)]
    assert read_columns(tmp_path / "t.parquet") == list(kinds)


def test_many_rows_are_written_in_several_row_groups_and_read_back_in_order(tmp_path: Path) -> None:
    rows = [{"id": i, "content": f"text {i}"} for i in range(2_500)]
    _write(tmp_path / "big.parquet", rows, {"id": "integer", "content": "string"}, size=1_000)
    meta = pq.ParquetFile(tmp_path / "big.parquet").metadata
    assert meta.num_row_groups == 3
    assert [meta.row_group(i).num_rows for i in range(3)] == [1_000, 1_000, 500]
    assert [i.record for i in read_items(tmp_path / "big.parquet")] == rows


def test_a_file_that_is_not_parquet_is_an_input_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError) as info:
        list(read_items(bad))
    assert str(info.value).startswith(f"{bad}: not a readable Parquet file")
    assert info.value.path == str(bad)


def test_a_job_reads_parquet_and_writes_typed_columns(ws: Workspace, capsys: Any) -> None:
    table = pa.Table.from_pylist(reviews(3))
    pq.write_table(table, ws.root / "data" / "reviews.parquet")
    ws.write_spec(
        input={"path": "../data/reviews.parquet", "id_field": "rid"},
        output={"path": "../out/reviews.parquet", "include_input": True},
    )
    assert ws.run("apply") == 0
    out = pq.read_table(ws.root / "out" / "reviews.parquet")
    assert out.schema.field("label").type == pa.string()
    assert out.schema.field("confidence").type == pa.float64()
    assert out.schema.field("id").type == pa.string()
    assert out.column("id").to_pylist() == ["r0", "r1", "r2"]
    assert set(out.column("label").to_pylist()) <= {"positive", "negative"}
    assert out.column("content").to_pylist() == [r["content"] for r in reviews(3)]


def test_enrich_fields_keep_the_types_the_job_declares(ws: Workspace) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    fields = [
        {"name": "stars", "type": "integer", "description": "1 to 5"},
        {"name": "price", "type": "number"},
        {"name": "refund", "type": "boolean"},
        {"name": "topics", "type": "list"},
    ]
    ws.write_spec(operation="enrich", categories=None, fields=fields,
                  output={"path": "../out/reviews.parquet"})
    assert ws.run("apply") == 0
    schema = pq.read_schema(ws.root / "out" / "reviews.parquet")
    assert [schema.field(n).type for n in ("stars", "price", "refund", "topics")] == [
        pa.int64(), pa.float64(), pa.bool_(), pa.string()
    ]


def test_a_missing_number_in_a_parquet_input_is_null_in_a_json_output(ws: Workspace) -> None:
    # pandas writes a missing float as NaN: JSON has no NaN, and strict parsers refuse it
    rows = [{**row, "price": price} for row, price in zip(reviews(3), [1.5, float("nan"), float("inf")], strict=True)]
    pq.write_table(pa.Table.from_pylist(rows), ws.root / "data" / "reviews.parquet")
    ws.write_spec(
        input={"path": "../data/reviews.parquet", "id_field": "rid"},
        output={"path": "../out/reviews.jsonl", "include_input": True},
    )
    assert ws.run("apply") == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    lines = (ws.root / "out" / "reviews.jsonl").read_text().splitlines()
    assert [json.loads(line, parse_constant=refuse)["input"]["price"] for line in lines] == [1.5, None, None]
