"""Hostile data files: each bad item is a located per-item error, the rest is answered,
and nothing escapes as a traceback (DESIGN.md §5, invariants 4 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.errors import InputError
from agentflow_jobs.io.readers import read_items
from tests.fakes.handles import FakeProvider
from tests.security.conftest import SpecProject, run_cli

NESTED = "[" * 5000 + "]" * 5000
BUG = ("io/readers.py: json.loads raises RecursionError on a deeply nested value, which "
       "escapes the reader instead of becoming a per-item error")


@pytest.mark.parametrize(
    ("name", "text", "bad_line"),
    [("huge-field.csv", "content,id\n" + "x" * 300_000 + ",1\nok,2\n", None),  # read: cells up to 64 MiB
     ("nul.jsonl", '{"content": "a\\u0000b"}\n{"content": "ok"}\n', None),
     ("bom.jsonl", '\ufeff{"content": "first"}\n{"content": "ok"}\n', None),
     ("crlf.csv", "content,id\r\nfirst,1\r\nok,2\r\n", None)],
)
def test_odd_input_files_are_items_or_located_errors(tmp_path: Path, name: str, text: str,
                                                     bad_line: int | None) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    items = list(read_items(path))
    assert len(items) == 2
    assert items[-1].record is not None and items[-1].record["content"] == "ok"
    errors = [item.line for item in items if item.error is not None]
    assert errors == ([bad_line] if bad_line else [])


@pytest.mark.parametrize(("name", "text"), [("deep.jsonl", f'{{"content": "a"}}\n{NESTED}\n{{"content": "ok"}}\n'),
                                            ("deep.json", f'[{{"content": "a"}}, {NESTED}, {{"content": "ok"}}]')])
def test_a_deeply_nested_item_is_a_located_item_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    try:
        items = list(read_items(path))
    except InputError as exc:  # refusing the whole file is acceptable if it names where
        assert exc.path and exc.line
        return
    assert [item.error is not None for item in items] == [False, True, False]


def test_apply_survives_a_deeply_nested_input_line(
        project: SpecProject, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTFLOW_STORE", str(project.root / "store.db"))
    (project.root / "data" / "in.jsonl").write_text(f'{{"content": "great"}}\n{NESTED}\n{{"content": "ok"}}\n')
    project.write_spec(execution={"max_failure_rate": 0.5})
    code, out, err = run_cli(capsys, "apply", "specs")
    assert code == 0, out + err
    errors = (project.root / "out" / "out.errors.jsonl").read_text()
    assert '"line": 2' in errors.replace('"line":2', '"line": 2')
    assert fake_provider.count == 2
