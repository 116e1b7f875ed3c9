"""A workspace on disk (specs, data, .git marker) wired to the fake provider."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentflow_jobs.cli import main


class Workspace:
    """A temporary project: ``specs/``, ``data/``, ``out/``; the cwd during the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / ".git").mkdir()
        (root / "specs").mkdir()
        (root / "data").mkdir()
        self.state = root / ".agentflow" / "state.db"

    def write_input(self, name: str, rows: list[dict[str, Any]], *, append: bool = False) -> Path:
        path = self.root / "data" / name
        with open(path, "a" if append else "w") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        return path

    def write_spec(self, name: str = "reviews", **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "apiVersion": "agentflow-jobs/v1",
            "kind": "Job",
            "name": name,
            "operation": "classify",
            "categories": ["positive", "negative"],
            "input": {"path": f"../data/{name}.jsonl", "id_field": "rid"},
            "output": {"path": f"../out/{name}.jsonl"},
            "mode": "sync",
        }
        for key, value in overrides.items():
            if value is None:
                spec.pop(key, None)
            elif isinstance(value, dict) and isinstance(spec.get(key), dict):
                merged = {**spec[key], **value}
                spec[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                spec[key] = value
        path = self.root / "specs" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def output(self, name: str = "reviews") -> list[dict[str, Any]]:
        path = self.root / "out" / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def errors(self, name: str = "reviews") -> list[dict[str, Any]]:
        path = self.root / "out" / f"{name}.errors.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def run(self, *args: str) -> int:
        return main(list(args))


def reviews(count: int, start: int = 0, word: str = "great") -> list[dict[str, Any]]:
    return [
        {"rid": f"r{i}", "content": f"review {i}: the product is {word}"}
        for i in range(start, start + count)
    ]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_provider: Any) -> Iterator[Workspace]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTFLOW_STORE", str(tmp_path / "store.db"))
    workspace = Workspace(tmp_path)
    yield workspace
    os.chdir(workspace.root.parent)
