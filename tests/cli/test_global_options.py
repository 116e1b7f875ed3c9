"""``--log-format`` / ``--log-level`` work before the command and after it; after wins."""

from __future__ import annotations

import json

import pytest

from agentflow_jobs.cli import main
from tests.runner.conftest import Workspace, reviews


def _json_events(err: str) -> list[dict[str, object]]:
    events = []
    for line in err.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


@pytest.fixture
def one_job(ws: Workspace) -> Workspace:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()
    return ws


def test_log_options_are_accepted_after_the_command(
    one_job: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "--log-level", "info", "--log-format", "json", "specs"]) == 0
    events = _json_events(capsys.readouterr().err)
    assert any(e.get("event") == "applying job" and e.get("level") == "info" for e in events)
    assert len(one_job.output()) == 2


def test_a_log_level_after_the_command_wins_over_the_one_before(
    one_job: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--log-format", "json", "--log-level", "info", "apply", "--log-level", "error", "specs"]
    assert main(argv) == 0
    assert not [e for e in _json_events(capsys.readouterr().err) if e.get("level") == "info"]


def test_a_bad_log_level_after_the_command_is_a_usage_error(
    one_job: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--log-level", "loud", "specs"]) == 2
    assert "--log-level" in capsys.readouterr().err


def test_every_command_lists_the_log_options_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("validate", "plan", "apply", "status", "cancel", "retry", "watch", "serve", "schema"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "--log-level" in out and "--log-format" in out, command
