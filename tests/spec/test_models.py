"""What a loaded JobSpec tells the runner: sources, paths, SDK fields, hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.spec import load_specs

EXAMPLES = Path(__file__).parents[2] / "specs" / "examples"
HEADER = "apiVersion: agentflow-jobs/v1\nkind: Job\n"


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _classify(name: str, categories: str = "[positive, negative]", extra: str = "") -> str:
    return (
        f"{HEADER}name: {name}\noperation: classify\ncategories: {categories}\n"
        f"input: {{path: data/{name}.jsonl}}\noutput: {{path: out/{name}.jsonl}}\n{extra}"
    )


def test_every_example_is_valid_and_one_per_operation_and_destination() -> None:
    specs = load_specs([EXAMPLES], root=EXAMPLES.parents[1])
    assert sorted(s.operation_kind for s in specs) == [
        "enrich", "enrich", "extract", "label", "label", "run", "summarize"
    ]
    assert sorted(s.output_format for s in specs) == [
        "csv", "json", "jsonl", "jsonl", "jsonl", "parquet", "table"
    ]
    for spec in specs:
        assert spec.input_path.exists(), spec.input_path
        assert spec.errors_path.parent == EXAMPLES / "out"
        if spec.output_format == "table":
            assert spec.output_location == f"sqlite:///{EXAMPLES / 'out' / 'reviews.db'}"
        else:
            assert spec.output_path.parent == EXAMPLES / "out"
        text = spec.source.read_text()
        assert text.startswith("# yaml-language-server: $schema=../../schemas/job-spec.schema.json\n")


def test_a_spec_knows_its_file_document_and_resolved_paths(tmp_path: Path) -> None:
    spec_file = _write(tmp_path, "jobs/reviews.yaml", _classify("first") + "---\n" + _classify("second"))
    first, second = load_specs([spec_file], root=tmp_path)
    assert (first.source, first.document_index, first.line) == (spec_file, 0, 1)
    assert (second.document_index, second.line) == (1, 9)
    assert second.input_path == tmp_path / "jobs/data/second.jsonl"
    assert second.output_path == tmp_path / "jobs/out/second.jsonl"
    assert second.errors_path == tmp_path / "jobs/out/second.errors.jsonl"
    assert (second.input_format, second.output_format) == ("jsonl", "jsonl")
    assert second.execution.max_failure_rate == 0.05
    assert (second.execution.batch_size, second.execution.auto_batch_threshold) == (1000, 5000)
    assert (second.mode, second.input.on_error, second.input.content_field) == ("auto", "skip", "content")


def test_request_fields_use_sdk_names_and_read_prompt_files(tmp_path: Path) -> None:
    _write(tmp_path, "prompts/system.txt", "You are terse.")
    _write(tmp_path, "prompts/user.txt", "Feedback: {content}\n")
    spec_file = _write(
        tmp_path,
        "run.yaml",
        f"{HEADER}name: fb\noperation: run\noperation_name: feedback_analysis\n"
        "system_prompt_file: prompts/system.txt\nuser_prompt_template_file: prompts/user.txt\n"
        "response_format: {type: json_object}\ninput: {path: in.csv}\noutput: {path: out.json}\n",
    )
    [spec] = load_specs([spec_file], root=tmp_path)
    assert spec.request_fields() == {
        "system_prompt": "You are terse.",
        "user_prompt_template": "Feedback: {content}\n",
        "response_format": {"type": "json_object"},
        "operation_name": "feedback_analysis",
    }
    assert spec.referenced_files() == [
        tmp_path / "in.csv", tmp_path / "prompts/system.txt", tmp_path / "prompts/user.txt"
    ]
    assert (spec.input_format, spec.output_format) == ("csv", "json")


def test_spec_hash_follows_what_changes_results_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def spec_hash(text: str) -> str:
        [spec] = load_specs([_write(tmp_path, "job.yaml", text)], root=tmp_path)
        return spec.spec_hash

    base = spec_hash(_classify("job"))
    assert spec_hash(_classify("job", extra="description: other\n")) == base
    assert spec_hash(_classify("job", extra="execution: {concurrency: 2}\nmode: batch\n")) == base
    assert spec_hash(_classify("job", categories="[positive, negative, mixed]")) != base
    assert spec_hash(_classify("job", extra="model: gpt-4o\n")) != base
    assert spec_hash(_classify("job", extra="profile: prod\n")) != base
    monkeypatch.setenv("AGENTFLOW_PROFILE", "prod")
    assert spec_hash(_classify("job")) == spec_hash(_classify("job", extra="profile: prod\n"))


def test_output_format_does_not_change_the_hash(tmp_path: Path) -> None:
    hashes = set()
    for out in ("out/a.jsonl", "out/a.csv"):
        text = f"{HEADER}name: a\noperation: summarize\ninput: {{path: in.jsonl}}\noutput: {{path: {out}}}\n"
        [spec] = load_specs([_write(tmp_path, "a.yaml", text)], root=tmp_path)
        hashes.add(spec.spec_hash)
    assert len(hashes) == 1


def test_profile_defaults_to_environment_then_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [spec] = load_specs([_write(tmp_path, "a.yaml", _classify("a"))], root=tmp_path)
    assert spec.resolved_profile == "local"
    monkeypatch.setenv("AGENTFLOW_PROFILE", "prod")
    assert spec.resolved_profile == "prod"


def test_interpolated_numbers_validate_as_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLOW_TEST_CONCURRENCY", "3")
    text = _classify("a", extra="execution:\n  concurrency: ${AGENTFLOW_TEST_CONCURRENCY}\n")
    [spec] = load_specs([_write(tmp_path, "a.yaml", text)], root=tmp_path)
    assert spec.execution.concurrency == 3


def test_jobs_may_chain_through_files(tmp_path: Path) -> None:
    chained = (
        f"{HEADER}name: second\noperation: summarize\n"
        "input: {path: out/first.jsonl}\noutput: {path: out/second.jsonl}\n"
    )
    specs = load_specs([_write(tmp_path, "a.yaml", _classify("first") + "---\n" + chained)], root=tmp_path)
    assert [s.name for s in specs] == ["first", "second"]
