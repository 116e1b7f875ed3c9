"""Uploaded item files: read by extension, a malformed one refused naming file and line."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow_jobs.engine.requests import items_from_file
from agentflow_jobs.errors import UnprocessableEntityError


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("a.jsonl", b'{"content": "x"}\n\n"y"\n', [{"content": "x"}, {"content": "y"}]),
        ("a.ndjson", b'{"content": "x"}\n', [{"content": "x"}]),
        ("a.csv", b"\xef\xbb\xbfcontent,n\nx,1\n", [{"content": "x", "n": "1"}]),
        ("a.json", b'[{"content": "x"}, "y"]', [{"content": "x"}, {"content": "y"}]),
        ("a.txt", b"x\n\ny\n", [{"content": "x"}, {"content": "y"}]),
    ],
)
def test_items_from_files(name: str, data: bytes, expected: list[dict[str, Any]]) -> None:
    assert items_from_file(name, data) == expected


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.jsonl", b'{"content": "x"}\n[1, 2]\n', "a.jsonl:2: each item must be"),
        ("a.jsonl", b'{"content": "x"}\n{\n', "a.jsonl:2: invalid JSON"),
        ("a.json", b'{"content": "x"}', "a.json: expected a JSON array"),
        ("a.txt", b"\xff\xfe", "not UTF-8"),
        ("a.parquet", b"x", "unsupported file type"),
    ],
)
def test_bad_files_name_where(name: str, data: bytes, message: str) -> None:
    with pytest.raises(UnprocessableEntityError, match=message):
        items_from_file(name, data)
