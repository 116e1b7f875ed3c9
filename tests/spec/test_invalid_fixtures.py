"""One invalid fixture per validation rule, each with its exact location and message."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.errors import SpecError
from agentflow_jobs.spec import load_specs

FIXTURES = Path(__file__).parent / "fixtures"

# fixture -> every expected problem as (path:line:col, message fragment)
CASES: dict[str, list[tuple[str, str]]] = {
    "invalid/unknown_key.yaml": [("5:1", "unknown key `catgories` (did you mean `categories`?)")],
    "invalid/unknown_nested_key.yaml": [("8:3", "unknown key `formt` in `input` (did you mean `format`?)")],
    "invalid/missing_required.yaml": [("1:1", "missing required key `output`")],
    "invalid/missing_nested_required.yaml": [("9:3", "missing required key `path` in `output`")],
    "invalid/wrong_type.yaml": [("11:16", "`execution.concurrency` must be an integer, got the string `lots`")],
    "invalid/out_of_range.yaml": [("11:21", "`execution.max_failure_rate` must be <= 1, got the number 1.5")],
    "invalid/bad_enum.yaml": [("4:12", "`operation` must be one of classify, label, extract")],
    "invalid/bad_api_version.yaml": [("1:13", "`apiVersion` must be `agentflow-jobs/v1`")],
    "invalid/bad_kind.yaml": [("2:7", "`kind` must be `Job`, got the string `CronJob`")],
    "invalid/bad_name.yaml": [("3:7", "`name` must use lowercase letters, digits, `-` and `_`")],
    "invalid/classify_one_category.yaml": [
        ("5:13", "`categories` needs at least 2 distinct labels, got 1"),
        ("5:24", "duplicate category `positive`"),
    ],
    "invalid/classify_folded_categories.yaml": [
        ("5:27", "categories `Yes` and `yes` differ only in case, spacing or Unicode form"),
    ],
    "invalid/classify_missing_categories.yaml": [("1:1", "operation `label` needs `categories`")],
    "invalid/categorical_no_values.yaml": [("6:5", "categorical field `segment` needs `valid_values`")],
    "invalid/valid_values_not_categorical.yaml": [("7:5", "`valid_values` only applies to `type: categorical`")],
    "invalid/valid_values_folded.yaml": [
        ("11:9", "valid_values `small business` and `Small  Business` differ only in case, spacing or Unicode form"),
    ],
    "invalid/duplicate_field_names.yaml": [("7:11", "duplicate field name `segment`")],
    "invalid/enrich_no_fields.yaml": [("1:1", "operation `enrich` needs `fields`")],
    "invalid/run_no_template.yaml": [("1:1", "operation `run` needs `user_prompt_template`")],
    "invalid/extract_no_instructions.yaml": [("1:1", "operation `extract` needs `extraction_instructions`")],
    "invalid/field_for_other_operation.yaml": [("6:1", "`categories` is not used by operation `extract`")],
    "invalid/template_attribute.yaml": [("5:40", "attribute access `.__class__` in `{content.__class__}`")],
    "invalid/template_positional.yaml": [("5:31", "positional placeholder `{0}` is not allowed")],
    "invalid/template_index.yaml": [("5:34", "index access `[0]` in `{x[0]}`")],
    "invalid/template_empty.yaml": [("5:31", "empty placeholder `{}`")],
    "invalid/template_conversion.yaml": [("5:39", "conversion `!r` in `{content!r}`")],
    "invalid/template_format_spec.yaml": [("5:39", "format spec `:>10` in `{content:>10}`")],
    "invalid/template_unclosed.yaml": [("5:31", "unclosed `{`")],
    "invalid/template_stray_close.yaml": [("5:38", "single `}`")],
    "invalid/template_block.yaml": [("8:17", "attribute access `.__dict__`")],
    "invalid/path_escape_dotdot.yaml": [("7:9", "`input.path` `../../../../outside.jsonl` points outside the workspace root")],
    "invalid/path_escape_absolute.yaml": [("9:9", "`output.path` `/tmp/agentflow-out.jsonl` points outside the workspace root")],
    # a Windows path in double quotes: YAML reads \0 as NUL (a traceback from resolve() before)
    "invalid/path_unusable.yaml": [
        ("7:9", "`input.path` contains a NUL character (\\0), which no file name can hold"),
        ("9:9", "`output.path` contains a character that is not Unicode text (a lone surrogate)"),
    ],
    "invalid/unknown_format.yaml": [("9:9", "cannot tell the format of `out/x.xlsx` from its extension `.xlsx`")],
    "invalid/output_is_input.yaml": [("9:9", "`output.path` is the same file as `input.path`")],
    "invalid/unknown_scheme.yaml": [("9:9", "unknown scheme `ftp://` in `output.path`")],
    "invalid/table_without_database.yaml": [("10:3", "`output.table` needs a database URL as `output.path`")],
    "invalid/database_without_table.yaml": [("9:9", "a database URL as `output.path` needs `output.table`")],
    "invalid/table_with_format.yaml": [("11:3", "`output.format` does not apply to a table output")],
    "invalid/parquet_named_jsonl.yaml": [("10:11", "`format: parquet` does not fit `out/x.jsonl` (a jsonl file)")],
    "invalid/database_as_input.yaml": [("7:9", "a database URL cannot be an input")],
    "invalid/unset_variable.yaml": [("6:8", "environment variable `AGENTFLOW_TEST_NOT_SET` is not set")],
    "invalid/bad_variable_syntax.yaml": [("6:12", "`${1X}` is not a valid variable reference")],
    "invalid/anchor.yaml": [("5:13", "anchor `&cats` is not supported")],
    "invalid/alias.yaml": [("5:13", "alias `*cats` is not supported")],
    "invalid/duplicate_key.yaml": [("6:1", "duplicate key `operation` (first defined at line 4)")],
    "invalid/tab.yaml": [("7:1", "tab character; YAML indents with spaces only")],
    "invalid/syntax.yaml": [("6:6", "invalid YAML: expected ',' or ']'")],
    "invalid/not_mapping.yaml": [("1:1", "a job spec must be a mapping of keys, got a list")],
    "invalid/deep.yaml": [("4:49", "nesting deeper than 32 levels")],
    "invalid/custom_tag.yaml": [("10:14", "YAML tag `!!python/object:os.system` is not supported")],
    "invalid/non_utf8.yaml": [("4:17", "not valid UTF-8 (byte 0xe9)")],
    "invalid/prompt_file_missing.yaml": [("5:21", "prompt file `invalid/prompts/nope.txt` does not exist")],
    "invalid/prompt_inline_and_file.yaml": [("6:1", "set either `user_prompt_template` or `user_prompt_template_file`")],
    "invalid/response_format_no_schema.yaml": [("7:3", "`type: json_schema` needs `json_schema")],
    "invalid/output_schema_not_object.yaml": [
        ("7:9", "`output_schema` must describe a JSON object (its root type is `array`)"),
    ],
    "invalid/run_schema_not_object.yaml": [
        ("11:13", "`response_format.json_schema.schema` must describe a JSON object (its root type is `array`)"),
    ],
    "invalid/output_schema_invalid.yaml": [("9:18", "`strng` is not a JSON Schema type")],
    "cross/same_output": [("cross/same_output/jobs.yaml:19:9", "job `first` writes the same output file (cross/same_output/jobs.yaml:9:9)")],
    "cross/cycle": [("cross/cycle/jobs.yaml:7:9", "jobs feed each other's inputs in a cycle: ping <- pong <- ping")],
}


def _problems(target: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_specs([Path(target)], root=FIXTURES)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_invalid_fixture_reports_each_problem_at_its_place(
    fixture: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    problems = _problems(fixture)
    expected = CASES[fixture]
    assert len(problems) == len(expected), problems
    for (where, fragment), problem in zip(expected, problems, strict=True):
        location = where if ":" in where and not where[0].isdigit() else f"{fixture}:{where}"
        assert problem.startswith(f"{location}: "), problem
        assert fragment in problem, problem


def test_prompt_file_template_errors_point_into_the_prompt_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    problems = _problems("invalid/prompt_file_template.yaml")
    assert problems == [
        "invalid/prompts/bad-template.txt:3:19: index access `[0]` in `{content[0]}` is not allowed; "
        "use a plain `{content}`"
    ]


def test_duplicate_job_names_across_files_name_both_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    problems = _problems("cross/duplicate_names")
    assert problems == [
        "cross/duplicate_names/b.yaml:3:7: duplicate job name `reviews`; first defined at "
        "cross/duplicate_names/a.yaml:3:7 (job names must be unique across all spec files)"
    ]


def test_every_problem_of_every_file_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    problems = _problems("invalid")
    files = {p.split(":", 1)[0] for p in problems}
    expected = {f for f in CASES if f.startswith("invalid/")} | {
        "invalid/prompts/bad-template.txt",
    }
    assert files == expected


def test_a_missing_key_points_at_the_mapping_and_a_wrong_value_at_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(FIXTURES)
    [missing] = _problems("invalid/missing_nested_required.yaml")
    [wrong] = _problems("invalid/wrong_type.yaml")
    assert missing.startswith("invalid/missing_nested_required.yaml:9:3:")  # `format:` under output
    assert wrong.startswith("invalid/wrong_type.yaml:11:16:")  # the value `lots`


def test_root_option_allows_paths_outside_the_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    specs = load_specs([Path("invalid/path_escape_absolute.yaml")], root=Path("/"))
    assert specs[0].output_path == Path("/tmp/agentflow-out.jsonl")
