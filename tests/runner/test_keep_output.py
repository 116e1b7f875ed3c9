"""A run that gets no answer from the provider never replaces the previous output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.handles import FakeProvider
from tests.runner.conftest import Workspace, reviews

DEAD = "http://127.0.0.1:9/v1"  # the discard port: connection refused


def _output_bytes(ws: Workspace) -> bytes:
    return (ws.root / "out" / "reviews.jsonl").read_bytes()


def test_a_dead_endpoint_keeps_the_other_models_rows_until_an_apply_gets_answers(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(28))
    ws.write_spec(output={"path": "../out/reviews.jsonl", "include_provenance": True})
    assert ws.run("apply") == 0
    before = _output_bytes(ws)
    monkeypatch.setenv("OPENAI_BASE_URL", DEAD)  # another model identity: every item is new
    capsys.readouterr()
    assert ws.run("apply", "--json") == 4
    captured = capsys.readouterr()
    (job,) = json.loads(captured.out)["jobs"]
    assert job["status"] == "error" and job["completed"] == 0
    assert "the previous output reviews.jsonl was left as it was" in job["message"]
    assert "left as it was" in captured.err
    assert _output_bytes(ws) == before
    assert [e["code"] for e in ws.errors()] == ["provider_error"] * 28
    second = FakeProvider()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", second.base_url)
        assert ws.run("apply") == 0
        assert second.count == 28
        rows = ws.output()
        assert len(rows) == 28 and ws.errors() == []
        assert {second.base_url.rstrip("/") in r["provenance"]["model"] for r in rows} == {True}
    finally:
        second.close()


def test_new_items_the_provider_cannot_answer_leave_the_output_as_it_was(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec()
    assert ws.run("apply") == 0
    before = _output_bytes(ws)
    ws.write_input("reviews.jsonl", reviews(2, start=5), append=True)
    fake_provider.script(status=503)  # answers nothing; the five cached rows need no request
    capsys.readouterr()
    assert ws.run("apply") == 4
    assert "left as it was" in capsys.readouterr().err
    assert _output_bytes(ws) == before
    assert [(e["id"], e["code"]) for e in ws.errors()] == [("r5", "provider_error"), ("r6", "provider_error")]
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert fake_provider.count == 2
    assert [r["id"] for r in ws.output()] == [f"r{i}" for i in range(7)]
    assert ws.errors() == []


def test_an_unreachable_agentflow_service_leaves_the_output_as_it_was(
    ws: Workspace, fake_provider: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"profiles:\n  remote:\n    base_url: {DEAD.removesuffix('/v1')}\n    api_key: k\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(profiles))
    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec()
    assert ws.run("apply") == 0
    before = _output_bytes(ws)
    ws.write_spec(profile="remote")
    capsys.readouterr()
    assert ws.run("apply", "--json") == 4
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["status"] == "error" and "left as it was" in job["message"]
    assert _output_bytes(ws) == before


def test_a_first_apply_against_a_dead_endpoint_still_writes_its_errors(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    monkeypatch.setenv("OPENAI_BASE_URL", DEAD)
    assert ws.run("apply") == 4
    assert not (ws.root / "out" / "reviews.jsonl").exists()  # no answers, no output yet
    assert [e["id"] for e in ws.errors()] == ["r0", "r1", "r2"]


def test_batch_mode_keeps_the_output_when_the_provider_answers_nothing(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec(mode="batch")
    assert ws.run("apply") == 0
    before = _output_bytes(ws)
    ws.write_input("reviews.jsonl", reviews(2, start=4), append=True)
    fake_provider.script(status=503)
    capsys.readouterr()
    assert ws.run("apply") == 4
    assert "left as it was" in capsys.readouterr().err
    assert _output_bytes(ws) == before
    fake_provider.reset()
    assert ws.run("apply") == 0
    assert len(ws.output()) == 6
