"""Problems that used to hide each other now come in one run: checks across files (unique
names, one writer per output) see every job, valid or not, and every bad placeholder of
a template is reported, each at its own place."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.errors import SpecError
from agentflow_jobs.spec import load_specs

_JOB = """\
apiVersion: agentflow-jobs/v1
kind: Job
name: {name}
operation: classify
categories: [positive, negative]
input:
  path: data/in.jsonl
output:
  path: {output}
"""


def _problems(tmp_path: Path) -> list[str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "in.jsonl").write_text('{"content": "x"}\n')
    with pytest.raises(SpecError) as caught:
        load_specs([tmp_path / "specs"], root=tmp_path)
    return [str(p).removeprefix(str(tmp_path) + "/") for p in caught.value.problems]


def _write(tmp_path: Path, file: str, text: str) -> None:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / file).write_text(text)


def test_a_duplicate_name_is_reported_with_the_other_problems_of_either_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "a.yaml", _JOB.format(name="same", output="../out/a.jsonl"))
    _write(tmp_path, "b.yaml", _JOB.format(name="same", output="../out/b.jsonl") + "colour: red\n")
    problems = _problems(tmp_path)
    assert len(problems) == 2, problems
    assert any(p.startswith("specs/b.yaml:10:1: unknown key `colour`") for p in problems), problems
    assert (
        "specs/b.yaml:3:7: duplicate job name `same`; first defined at specs/a.yaml:3:7 "
        "(job names must be unique across all spec files)"
    ) in problems


def test_two_writers_of_one_output_are_reported_even_when_the_first_is_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "a.yaml", _JOB.format(name="first", output="../out/x.jsonl").replace(
        "categories: [positive, negative]", "categories: []"))
    _write(tmp_path, "b.yaml", _JOB.format(name="second", output="../out/x.jsonl"))
    problems = _problems(tmp_path)
    assert len(problems) == 2, problems
    assert any(p.startswith("specs/a.yaml:5:13: ") for p in problems), problems
    assert "specs/b.yaml:9:9: job `first` writes the same output file (specs/a.yaml:9:9)" in problems


def test_documents_without_a_string_name_take_no_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "a.yaml", _JOB.format(name="[1]", output="../out/x.jsonl"))
    _write(tmp_path, "b.yaml", _JOB.format(name="ok", output="../out/x.jsonl") + "---\n- a list\n")
    problems = _problems(tmp_path)
    assert not any("same output" in p or "duplicate job name" in p for p in problems), problems


def test_every_bad_placeholder_in_a_template_is_reported_at_its_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = _JOB.format(name="tpl", output="../out/a.jsonl").replace(
        "operation: classify\ncategories: [positive, negative]\n",
        'operation: run\nuser_prompt_template: "{0} {x[0]} {a.b}"\n',
    )
    _write(tmp_path, "a.yaml", job)
    problems = _problems(tmp_path)
    assert [p.split(": ", 1)[0] for p in problems] == ["specs/a.yaml:5:24", "specs/a.yaml:5:30", "specs/a.yaml:5:37"]
    assert "positional" in problems[0] and "index access" in problems[1] and "attribute access" in problems[2]


def test_every_bad_placeholder_in_a_template_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "prompt.txt").write_text("Rate:\n{0}\n  {content.x} {}\n")
    job = _JOB.format(name="tpl", output="../out/a.jsonl").replace(
        "operation: classify\ncategories: [positive, negative]\n",
        "operation: run\nuser_prompt_template_file: prompt.txt\n",
    )
    _write(tmp_path, "a.yaml", job)
    assert [p.split(": ", 1)[0] for p in _problems(tmp_path)] == [
        "specs/prompt.txt:2:1", "specs/prompt.txt:3:11", "specs/prompt.txt:3:15"
    ]
