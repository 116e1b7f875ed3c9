"""Input readers: every format streams items, and bad rows name their line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentflow_jobs.errors import InputError
from agentflow_jobs.io import detect_format, extension_format, read_columns, read_items, read_stream


def _items(path: Path, **kwargs: object) -> list[tuple[int, int, object, object]]:
    return [
        (i.index, i.line, i.record, i.error and i.error.code) for i in read_items(path, **kwargs)
    ]  # type: ignore[arg-type]


def test_jsonl_skips_blank_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"content": "a"}\n\n{bad\n"just text"\n[1]\n')
    assert _items(path) == [
        (0, 1, {"content": "a"}, None),
        (1, 3, None, "invalid_json"),
        (2, 4, {"content": "just text"}, None),
        (3, 5, None, "invalid_input"),
    ]


def test_jsonl_on_error_fail_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"content": "a"}\n{bad\n')
    with pytest.raises(InputError) as info:
        list(read_items(path, on_error="fail"))
    assert f"{path}:2:" in str(info.value)
    assert info.value.line == 2


def test_non_utf8_line_is_a_located_item_error(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"content": "ok"}\n{"content": "caf\xe9"}\n{"content": "b"}\n')
    items = list(read_items(path))
    assert [i.error.code if i.error else None for i in items] == [None, "invalid_encoding", None]
    assert items[1].error is not None and "line 2" in items[1].error.message


def test_csv_header_quoted_newlines_and_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('id,content\n1,"two\nlines"\n2,short,extra\n\n3,last\n')
    assert _items(path) == [
        (0, 2, {"id": "1", "content": "two\nlines"}, None),
        (1, 4, None, "invalid_csv"),
        (2, 6, {"id": "3", "content": "last"}, None),
    ]


def test_a_csv_header_naming_a_column_twice_is_a_located_error(tmp_path: Path) -> None:
    # which "text" to read is not clear: the last one was taken, unsaid
    path = tmp_path / "in.csv"
    path.write_text("\nid,text, text \n1,real text,oops\n")
    with pytest.raises(InputError) as info:
        list(read_items(path))
    assert info.value.line == 2
    assert "names column 'text' twice (columns 2 and 3)" in str(info.value)
    with pytest.raises(InputError):
        read_columns(path)


def test_blank_lines_before_a_csv_header_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("\n\nid,text\n1,a\n")
    assert _items(path) == [(0, 4, {"id": "1", "text": "a"}, None)]
    assert read_columns(path) == ["id", "text"]


def test_a_csv_cell_holding_a_long_document_is_read(tmp_path: Path) -> None:
    # 150 KB in one quoted cell, over lines: Python's csv refuses cells over 128 KiB by default
    document = "para one\n" + "x" * 150_000 + "\npara three"
    path = tmp_path / "in.csv"
    path.write_text(f'id,text\n1,short\n2,"{document}"\n3,last\n')
    assert [(i.line, i.record and i.record["id"], i.error) for i in read_items(path)] == [
        (2, "1", None), (3, "2", None), (6, "3", None)]
    assert next(i for i in read_items(path) if i.line == 3).record == {"id": "2", "text": document}


def test_csv_non_utf8_row(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"content\nfine\nbad \xff byte\n")
    items = list(read_items(path))
    assert items[1].error is not None and items[1].error.code == "invalid_encoding"
    assert items[1].line == 3


def test_json_array_streams_elements_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('[\n  {"content": "a"},\n  {"content": "b",\n   "n": 12345},\n  7\n]\n')
    assert _items(path) == [
        (0, 2, {"content": "a"}, None),
        (1, 3, {"content": "b", "n": 12345}, None),
        (2, 5, None, "invalid_input"),
    ]


@pytest.mark.parametrize("tail", ['\n[{"content": "c"}]\n', " trailing garbage"])
def test_data_after_a_json_array_is_a_located_error_not_dropped(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "in.json"
    path.write_text('[{"content": "a"},\n {"content": "b"}]' + tail)
    with pytest.raises(InputError) as info:
        list(read_items(path))
    assert "unexpected data after the JSON array" in str(info.value) and info.value.line == 2 + tail.count("\n[")
    path.write_text('[{"content": "a"}]\n\n  \n')
    assert [item.record for item in read_items(path)] == [{"content": "a"}]


def test_json_lines_in_a_json_file_say_which_format_it_is(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('{"content": "a"}\n{"content": "b"}\n')
    with pytest.raises(InputError, match=r"set input\.format: jsonl"):
        list(read_items(path))


def test_json_array_larger_than_read_buffer(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    rows = [{"content": "x" * 100, "n": i} for i in range(3000)]
    path.write_text(json.dumps(rows, indent=1))
    items = list(read_items(path))
    assert [i.record for i in items] == rows


def test_json_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('[\n{"content": "a"},\n{"content": }\n]')
    with pytest.raises(InputError) as info:
        list(read_items(path))
    assert info.value.line == 3


def test_json_not_an_array(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('{"content": "a"}')
    with pytest.raises(InputError, match="expected a JSON array"):
        list(read_items(path))


def test_txt_one_item_per_line(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("first\n\nsecond\r\n")
    assert _items(path) == [(0, 1, {"content": "first"}, None), (1, 3, {"content": "second"}, None)]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read input"):
        list(read_items(tmp_path / "nope.jsonl"))


def test_deeply_nested_jsonl_line_is_an_item_error(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"content": "a"}\n' + "[" * 5000 + "]" * 5000 + '\n{"content": "ok"}\n')
    assert [(i.line, i.error and i.error.code) for i in read_items(path)] == [
        (1, None),
        (2, "invalid_json"),
        (3, None),
    ]


def test_deeply_nested_json_element_refuses_the_file_located(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('[{"content": "a"},\n' + "[" * 5000 + "]" * 5000 + "]")
    with pytest.raises(InputError) as info:
        list(read_items(path))
    assert info.value.line == 2


def test_read_columns_is_a_csv_header_and_none_for_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b'\xef\xbb\xbfid, text ,"a,b"\n1,x,y\n')
    assert read_columns(path) == ["id", "text", "a,b"]
    (tmp_path / "empty.csv").write_text("")
    assert read_columns(tmp_path / "empty.csv") == []
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    assert read_columns(tmp_path / "in.jsonl") is None
    assert read_columns(tmp_path / "in.jsonl", format="csv") == ['{"id": 1}']
    with pytest.raises(InputError, match="cannot read input"):
        read_columns(tmp_path / "nowhere.csv")


def test_one_extension_map_strict_or_defaulting_to_jsonl() -> None:
    assert [extension_format(f"a{ext}") for ext in (".JSONL", ".ndjson", ".csv", ".json", ".txt")] == [
        "jsonl", "jsonl", "csv", "json", "txt"
    ]
    assert extension_format("a.xlsx") is None and extension_format("noext") is None
    assert detect_format("a.xlsx") == "jsonl" and detect_format("a.csv") == "csv"
    assert extension_format("a.parquet") == "parquet" == extension_format("a.PQ")


def test_read_stream_reads_an_open_file_and_names_it_once_per_error() -> None:
    data = io.BytesIO(b'{"content": "a"}\n{bad\n')
    with pytest.raises(InputError) as info:
        list(read_stream(data, "jsonl", name="up.jsonl", on_error="fail"))
    assert str(info.value).startswith("up.jsonl:2: invalid JSON")
    assert info.value.line == 2
    items = list(read_stream(io.BytesIO(b"x\n\ny\n"), "txt", name="up.txt"))
    assert [i.record for i in items] == [{"content": "x"}, {"content": "y"}]
