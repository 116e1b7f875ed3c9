"""A workspace for hostile-input tests: a temp project (``.git`` marker) that is the cwd,
inside an ``outer`` folder whose other contents must never change."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentflow_jobs.cli import main

BASE_SPEC: dict[str, Any] = {
    "apiVersion": "agentflow-jobs/v1",
    "kind": "Job",
    "name": "hostile",
    "operation": "classify",
    "categories": ["positive", "negative"],
    "input": {"path": "../data/in.jsonl"},
    "output": {"path": "../out/out.jsonl"},
    "mode": "sync",
}


class SpecProject:
    """``outer/ws`` is the workspace root; ``outer`` is where escapes would land."""

    def __init__(self, outer: Path) -> None:
        self.outer = outer
        self.root = outer / "ws"
        for folder in (".git", "specs", "data"):
            (self.root / folder).mkdir(parents=True)
        (self.root / "data" / "in.jsonl").write_text('{"content": "a great product"}\n')
        self.spec = self.root / "specs" / "job.yaml"

    def write(self, text: str | bytes) -> Path:
        if isinstance(text, bytes):
            self.spec.write_bytes(text)
        else:
            self.spec.write_text(text, encoding="utf-8")
        return self.spec

    def write_spec(self, **overrides: Any) -> Path:
        spec = {**BASE_SPEC, **overrides}
        return self.write(yaml.safe_dump({k: v for k, v in spec.items() if v is not None},
                                         sort_keys=False))

    def files_outside(self) -> set[Path]:
        """Every file under ``outer`` but outside the workspace."""
        return {p for p in self.outer.rglob("*") if not p.is_relative_to(self.root)}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SpecProject]:
    proj = SpecProject(tmp_path / "outer")
    monkeypatch.chdir(proj.root)
    yield proj
    os.chdir(tmp_path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` with its stdout and stderr; an uncaught exception fails the test."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
