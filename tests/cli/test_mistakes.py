"""A user mistake on the command line ends in one clear line and an exit code, never a traceback.

``main(argv)`` lets any exception it does not expect escape, so a test that gets an exit
code back has already proved there was no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow_jobs.cli import main
from tests.runner.conftest import Workspace, reviews

RUNNER_COMMANDS = [["apply"], ["plan"], ["status"], ["retry", "reviews"], ["cancel", "reviews"]]
JSON_COMMANDS = [*RUNNER_COMMANDS, ["validate"]]


def _one_job(ws: Workspace) -> None:
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec()


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=lambda c: c[0])
def test_a_missing_path_is_a_usage_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main([*command, "nowhere", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nowhere: no such file or directory" in captured.err


@pytest.mark.parametrize("command", [["apply"], ["plan"], ["status"]], ids=lambda c: c[0])
def test_a_directory_without_specs_has_no_jobs(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    (ws.root / "empty").mkdir()
    assert main([*command, "empty", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"] == []


@pytest.mark.parametrize("command", RUNNER_COMMANDS, ids=lambda c: c[0])
def test_a_data_file_given_as_spec_path_is_a_located_spec_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _one_job(ws)
    assert main([*command, "data/reviews.jsonl"]) == 3
    assert "data/reviews.jsonl:1:1: missing required key `apiVersion`" in capsys.readouterr().err


@pytest.mark.parametrize("command", [*RUNNER_COMMANDS, ["watch", "--once"]], ids=lambda c: c[0])
def test_state_pointing_to_a_directory_is_a_usage_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _one_job(ws)
    (ws.root / "statedir").mkdir()
    assert main([*command, "--state", "statedir"]) == 2
    assert "'statedir' is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("command", RUNNER_COMMANDS, ids=lambda c: c[0])
def test_state_in_an_unwritable_place_is_a_state_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _one_job(ws)
    assert main([*command, "--state", "/proc/agentflow-nope/state.db", "--json"]) == 5
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: /proc/agentflow-nope/state" in captured.err


@pytest.mark.parametrize("command", [["apply"], ["plan"], ["status"]], ids=lambda c: c[0])
def test_an_unknown_job_lists_the_job_names(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _one_job(ws)
    ws.write_input("other.jsonl", reviews(1))
    ws.write_spec("other")
    assert main([*command, "--job", "nope", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no job named nope (jobs: other, reviews)" in captured.err


@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_retry_or_cancel_of_an_unknown_job_lists_the_job_names(
    ws: Workspace, capsys: pytest.CaptureFixture[str], fake_provider: object, command: str
) -> None:
    _one_job(ws)
    assert main([command, "nope", "--json"]) == 2
    assert "no job named nope (jobs: reviews)" in capsys.readouterr().err


def test_status_before_any_apply_says_never(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    _one_job(ws)
    assert main(["status", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["jobs"]
    assert (row["job"], row["last_apply"], row["completed"]) == ("reviews", None, 0)


def test_cancel_before_any_apply_cancels_nothing(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_job(ws)
    assert main(["cancel", "reviews", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "reviews"


@pytest.mark.parametrize("target", ["isdir.jsonl", "afile/nested.jsonl"])
def test_an_output_path_that_cannot_be_written_is_an_error_not_a_traceback(
    ws: Workspace, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    (ws.root / "out").mkdir()
    (ws.root / "out" / "isdir.jsonl").mkdir()
    (ws.root / "out" / "afile").write_text("x")
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec(output={"path": f"../out/{target}"})
    assert main(["apply", "--json"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    (job,) = json.loads(captured.out)["jobs"]
    assert job["status"] == "error"
    reason = "Is a directory" if target == "isdir.jsonl" else "File exists"
    assert job["message"].startswith(f"{ws.root / 'out' / target}: cannot write the output ({reason})")


def test_root_that_is_a_file_is_a_usage_error(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    _one_job(ws)
    assert main(["plan", "--root", "data/reviews.jsonl"]) == 2
    assert "'data/reviews.jsonl' is a file" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["data/reviews.jsonl/schema.json", "/proc/agentflow-nope/s.json"])
def test_schema_output_that_cannot_be_written_is_a_usage_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    _one_job(ws)
    assert main(["schema", "-o", target]) == 2
    assert f"error: cannot write {target}: " in capsys.readouterr().err
    assert not Path(target).exists()


@pytest.mark.parametrize("command", [*JSON_COMMANDS, ["watch"]], ids=lambda c: c[0])
def test_a_root_that_does_not_exist_is_a_usage_error(
    ws: Workspace, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    _one_job(ws)
    assert main([*command, "--root", str(ws.root / "nowhere")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{ws.root / 'nowhere'}: not an existing directory" in captured.err
