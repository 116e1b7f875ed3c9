"""`agentflow-jobs validate` and `schema` through `main(argv)`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentflow_jobs.cli import main

REPO = Path(__file__).parents[2]
FIXTURES = REPO / "tests" / "spec" / "fixtures"
SCHEMA_FILE = REPO / "schemas" / "job-spec.schema.json"


def test_examples_are_valid(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "specs/examples"]) == 0
    assert capsys.readouterr().out == "valid: 7 jobs in 7 files\n"


def test_default_path_is_specs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("valid: ")


def test_invalid_spec_exits_3_with_located_problems_and_a_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    code = main(["validate", "invalid/unknown_key.yaml", "invalid/wrong_type.yaml", "--root", "."])
    assert code == 3
    assert capsys.readouterr().out.splitlines() == [
        "invalid/unknown_key.yaml:5:1: unknown key `catgories` (did you mean `categories`?)",
        "invalid/wrong_type.yaml:11:16: `execution.concurrency` must be an integer, got the string `lots`",
        "invalid: 2 problems in 2 files (2 files checked)",
    ]


def test_json_output_shape(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    assert main(["validate", "--json", "invalid/bad_enum.yaml", "--root", "."]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "valid": False,
        "jobs": [],
        "problems": [
            {
                "path": "invalid/bad_enum.yaml",
                "line": 4,
                "column": 12,
                "message": "`operation` must be one of classify, label, extract, summarize, enrich, run; "
                "got the string `clasify`",
                "hint": "did you mean `classify`?",
                "job": "bad-enum",
            }
        ],
    }


def test_json_output_lists_jobs_when_valid(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "--json", "specs/examples/classify.yaml", "specs/examples/run.yaml"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "valid": True, "jobs": ["review-sentiment", "feedback-analysis"], "problems": []
    }


def test_every_invalid_fixture_exits_3_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    for fixture in sorted(Path("invalid").glob("*.yaml")):
        assert main(["validate", str(fixture), "--root", "."]) == 3, fixture
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        assert captured.out.splitlines()[-1].startswith("invalid: ")


def test_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "nope"]) == 2
    assert "nope: no such file or directory" in capsys.readouterr().err


def test_empty_directory_is_valid_with_a_note(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out == "valid: no jobs found (0 files checked)\n"


def test_committed_schema_is_not_stale(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "schemas/job-spec.schema.json is stale: run `agentflow-jobs schema --output schemas/job-spec.schema.json`"
    )


def test_schema_output_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert json.loads(target.read_text())["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_spec_that_is_a_device_or_a_pipe_is_refused_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("z.yaml").symlink_to("/dev/zero")
    os.mkfifo("p.yaml")
    assert main(["validate", "z.yaml", "p.yaml", "--root", "."]) == 3
    assert capsys.readouterr().out.splitlines() == [
        # the link is followed, and what it points to is named
        "/dev/zero:1:1: not a regular file (a character device); job specs must be plain files",
        "p.yaml:1:1: not a regular file (a named pipe); job specs must be plain files",
        "invalid: 2 problems in 2 files (2 files checked)",
    ]


def test_schema_output_into_a_missing_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "nonexist" / "x.json"
    assert main(["schema", "--output", str(target)]) == 2
    assert f"error: cannot write {target}: directory {target.parent} does not exist" in capsys.readouterr().err
    assert not target.parent.exists()


def test_a_spec_named_in_capitals_is_found_in_its_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows and some editors save `Reviews.YAML`: a folder's specs are found whatever the case
    (tmp_path / ".git").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "r.jsonl").write_text('{"text": "fine"}\n')
    spec = ("apiVersion: agentflow-jobs/v1\nkind: Job\nname: {name}\noperation: classify\n"
            "categories: [a, b]\ninput: {{path: ../data/r.jsonl}}\noutput: {{path: ../out/{name}.jsonl}}\n")
    (tmp_path / "specs" / "Reviews.YAML").write_text(spec.format(name="upper"))
    (tmp_path / "specs" / "other.Yml").write_text(spec.format(name="mixed"))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["jobs"]) == ["mixed", "upper"]
