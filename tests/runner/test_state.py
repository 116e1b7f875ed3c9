"""The state file and its lock."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.errors import LockedError, StateError
from agentflow_jobs.runner.backend import as_location, state_lock
from agentflow_jobs.runner.lock import StateLock
from agentflow_jobs.runner.state import SCHEMA_VERSION
from agentflow_jobs.runner.state import SqliteState as State
from agentflow_jobs.runner.workspace import Workspace as StateWorkspace
from tests.runner.conftest import Workspace, reviews


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, ws: Workspace) -> list[str]:
    """The ``--state`` arguments of each backend (none: the default state file)."""
    if request.param == "sqlite":
        return []
    return ["--state", request.getfixturevalue("pg_url")]


def _location(ws: Workspace, backend: list[str]) -> Any:
    return as_location(backend[1]) if backend else ws.state


def test_second_apply_exits_5_naming_the_holder(
    ws: Workspace, fake_provider: Any, capsys: Any, backend: list[str]
) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec()
    holder = state_lock(_location(ws, backend), command="watch")
    holder.acquire()
    assert ws.run("apply", "--lock-timeout", "0.2", *backend) == 5
    err = capsys.readouterr().err
    assert "is locked by pid" in err and "watch" in err
    assert ws.run("status", "--json", *backend) == 0
    assert json.loads(capsys.readouterr().out)["lock"]["command"] == "watch"
    holder.release()
    assert fake_provider.count == 0
    assert ws.run("apply", *backend) == 0


def test_lock_waits_up_to_the_timeout(tmp_path: Path) -> None:
    holder = StateLock(tmp_path / "state.lock")
    holder.acquire()
    waiter = StateLock(tmp_path / "state.lock")
    with pytest.raises(LockedError) as info:
        waiter.acquire(timeout=0.1)
    assert info.value.holder["pid"] > 0
    holder.release()
    waiter.acquire(timeout=0.1)
    assert waiter.held
    waiter.release()


def test_a_held_workspace_spans_several_applies(
    ws: Workspace, fake_provider: Any, backend: list[str]
) -> None:
    from agentflow_jobs.runner import apply_jobs
    from agentflow_jobs.spec.load import load_specs

    ws.write_input("reviews.jsonl", reviews(4))
    ws.write_spec()
    specs = load_specs([ws.root / "specs"])
    with StateWorkspace(_location(ws, backend)) as held:
        assert apply_jobs(specs, state=held).exit_code == 0
        assert ws.run("apply", *backend) == 5  # someone else is refused meanwhile
        assert apply_jobs(specs, state=held).jobs[0].status == "up_to_date"


def test_corrupt_state_is_exit_5(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()
    ws.state.parent.mkdir()
    ws.state.write_bytes(b"this is not sqlite" * 100)
    assert ws.run("apply") == 5
    assert "corrupt" in capsys.readouterr().err


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer"):
        State(path)


def test_status_json(ws: Workspace, fake_provider: Any, capsys: Any, backend: list[str]) -> None:
    ws.write_input("reviews.jsonl", reviews(5))
    ws.write_spec()
    assert ws.run("apply", *backend) == 0
    capsys.readouterr()
    assert ws.run("status", "--json", *backend) == 0
    document = json.loads(capsys.readouterr().out)
    (row,) = document["jobs"]
    assert row["job"] == "reviews" and row["completed"] == 5 and row["drift"] == []
    assert row["tokens"] > 0 and row["batches_in_flight"] == [] and document["lock"] is None
    ws.write_input("reviews.jsonl", reviews(1, start=5), append=True)
    assert ws.run("status", "--json", *backend) == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["drift"] == ["input"]


def test_jobs_run_after_the_job_producing_their_input(ws: Workspace, fake_provider: Any) -> None:
    ws.write_input("first.jsonl", reviews(4))
    # the consumer's spec file sorts first: only the dependency order can run it second
    ws.write_spec(
        "a-consumer",
        operation="summarize",
        categories=None,
        summary_instructions="one line",
        input={"path": "../out/first.jsonl", "id_field": "id", "content_field": "result"},
    )
    ws.write_spec("first")
    assert ws.run("apply") == 0
    assert [r["id"] for r in ws.output("a-consumer")] == [f"r{i}" for i in range(4)]


def test_dependency_cycle_is_a_spec_error(ws: Workspace, fake_provider: Any, capsys: Any) -> None:
    ws.write_spec("a", input={"path": "../out/b.jsonl"})
    ws.write_spec("b", input={"path": "../out/a.jsonl"})
    assert ws.run("apply") == 3
    assert "cycle" in capsys.readouterr().err


def test_a_job_whose_upstream_failed_is_skipped(
    ws: Workspace, fake_provider: Any, capsys: Any
) -> None:
    ws.write_input("first.jsonl", [{"rid": "x", "content": "poison"}])
    # the consumer's spec file sorts first: only the dependency order can skip it
    ws.write_spec("a-consumer", input={"path": "../out/first.jsonl", "id_field": "id"})
    ws.write_spec("first")
    fake_provider.script(match="poison", status=400)
    assert ws.run("apply", "--json") == 1
    jobs = {j["name"]: j for j in json.loads(capsys.readouterr().out)["jobs"]}
    assert list(jobs) == ["first", "a-consumer"]
    assert jobs["first"]["status"] == "failed"
    assert jobs["a-consumer"]["status"] == "skipped"
    assert "upstream job first did not finish" in jobs["a-consumer"]["message"]
