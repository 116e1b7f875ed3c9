"""Hostile job specs end in exit 3 with every problem located, no traceback, no request
sent and no file written outside the workspace (DESIGN.md §5, invariant 5)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agentflow_jobs.errors import SpecError
from agentflow_jobs.spec import load_specs
from tests.security.conftest import BASE_SPEC, SpecProject, run_cli

LOCATED = re.compile(r"^specs/job\.yaml:(\d+):(\d+): .+", re.M)


def _header() -> str:
    lines = [f"{k}: {v}" for k, v in BASE_SPEC.items() if not isinstance(v, dict | list)]
    return "\n".join([*lines, "categories: [positive, negative]"])


def assert_refused(capsys: pytest.CaptureFixture[str], project: SpecProject, fragment: str,
                   fake: Any = None) -> str:
    """validate and apply both exit 3 naming ``fragment`` at a line:col; nothing escapes."""
    before = project.files_outside()
    for command in ("validate", "apply"):
        code, out, err = run_cli(capsys, command, "specs")
        text = out + err
        assert code == 3, text
        assert "Traceback" not in text
        assert LOCATED.search(text), text
        assert fragment in text, text
    assert project.files_outside() == before
    assert not (project.root / "out").exists()
    if fake is not None:
        assert fake.count == 0
    return text


def test_billion_laughs_alias_bomb_is_refused_at_the_first_anchor(
        project: SpecProject, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"a{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    project.write(_header() + "\n" + "\n".join(bomb) + "\n")
    text = assert_refused(capsys, project, "anchor `&a0`")
    assert f"specs/job.yaml:{len(_header().splitlines()) + 1}:" in text


def test_merge_key_alias_is_refused(project: SpecProject, capsys: pytest.CaptureFixture[str]) -> None:
    project.write("base: &b {operation: classify}\n<<: *b\n" + _header() + "\n")
    assert_refused(capsys, project, "anchor `&b`")


def test_huge_file_is_refused_without_reading_it_all(
        project: SpecProject, capsys: pytest.CaptureFixture[str]) -> None:
    project.write(_header() + "\ndescription: '" + "x" * (3 * 1024 * 1024) + "'\n")
    assert_refused(capsys, project, "limited to 1 MiB")


@pytest.mark.parametrize("shape", ["flow", "block"])
def test_deep_nesting_is_refused(project: SpecProject, capsys: pytest.CaptureFixture[str],
                                 shape: str) -> None:
    depth = 5000 if shape == "flow" else 200
    if shape == "flow":
        nested = "[" * depth + "]" * depth
    else:
        nested = "\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v"
    project.write(_header() + "\ndescription: " + nested + "\n")
    assert_refused(capsys, project, "nesting deeper than")


@pytest.mark.parametrize(
    ("section", "value"),
    [("output", "../../escaped.jsonl"), ("output", "/tmp/agentflow-escaped.jsonl"),
     ("output", "../out/../../../escaped.jsonl"), ("input", "../../../../etc/passwd"),
     ("output", "~/escaped.jsonl")],
)
def test_paths_escaping_the_workspace_are_refused(
        project: SpecProject, capsys: pytest.CaptureFixture[str], section: str, value: str) -> None:
    project.write_spec(**{section: {**BASE_SPEC[section], "path": value}})
    assert_refused(capsys, project, "points outside the workspace root")
    assert not Path("/tmp/agentflow-escaped.jsonl").exists()


def test_output_through_a_symlink_out_of_the_workspace_is_refused(
        project: SpecProject, capsys: pytest.CaptureFixture[str]) -> None:
    outside = project.outer / "elsewhere"
    outside.mkdir()
    (project.root / "out").symlink_to(outside, target_is_directory=True)
    project.write_spec()
    for command in ("validate", "apply"):
        code, out, err = run_cli(capsys, command, "specs")
        assert code == 3, out + err
        assert "points outside the workspace root" in out + err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("template", "fragment"),
    [("{content.__init__.__globals__}", "attribute access"),
     ("{content.__class__.__mro__}", "attribute access"),
     ("{0}", "positional placeholder"),
     ("{content[0]}", "index access"),
     ("{content!r}", "conversion"),
     ("{content:>99999999}", "format spec"),
     ("{}", "empty placeholder"),
     ("text { content", "`{`"),
     ("text } content", "`}`")],
)
def test_template_injection_is_refused(project: SpecProject, capsys: pytest.CaptureFixture[str],
                                       fake_provider: Any, template: str, fragment: str) -> None:
    project.write_spec(operation="run", categories=None, user_prompt_template=template)
    assert_refused(capsys, project, fragment, fake_provider)


def test_template_file_injection_is_located_in_the_template_file(
        project: SpecProject, capsys: pytest.CaptureFixture[str]) -> None:
    (project.root / "specs" / "prompt.txt").write_text("Rate this:\n  {content.__init__.__globals__}\n")
    project.write_spec(operation="run", categories=None, user_prompt_template_file="prompt.txt")
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3
    assert "specs/prompt.txt:2:" in out + err and "attribute access" in out + err


@pytest.mark.parametrize(
    ("value", "env"),
    [("${${INNER}}", {"INNER": "HOME"}),
     ("${}", {}),
     ("${UNSET_VARIABLE_FOR_TEST}", {}),
     ("${1ABC}", {}),
     ("${NAME", {"NAME": "x"})],
)
def test_malformed_or_unset_variables_are_located_errors(
        project: SpecProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        value: str, env: dict[str, str]) -> None:
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    project.write(_header() + f"\ndescription: \"{value}\"\n"
                  "input: {path: ../data/in.jsonl}\noutput: {path: ../out/out.jsonl}\n")
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3, out + err
    assert re.search(r"specs/job\.yaml:\d+:\d+: .*(\$\{|variable)", out + err), out + err
    assert "Traceback" not in out + err


def _description(project: SpecProject, value: str) -> str:
    project.write(_header() + f"\ndescription: \"{value}\"\n"
                  "input: {path: ../data/in.jsonl}\noutput: {path: ../out/out.jsonl}\n")
    try:
        jobs = load_specs([project.spec], root=project.root)
    except SpecError as exc:
        assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)
        return "<refused>"
    return str(jobs[0].description)


def test_an_expanded_value_is_never_expanded_again(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_TARGET", "leaked-value")
    monkeypatch.setenv("TRICK", "${CANARY_TARGET}")
    assert _description(project, "${TRICK}") == "${CANARY_TARGET}"
    monkeypatch.setenv("TRICK", "$${CANARY_TARGET}")
    assert _description(project, "${TRICK}") == "$${CANARY_TARGET}"


def test_a_default_holding_a_reference_is_not_expanded(
        project: SpecProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_TARGET", "leaked-value")
    monkeypatch.delenv("UNSET_X", raising=False)
    result = _description(project, "${UNSET_X:-${CANARY_TARGET}}")
    assert "leaked-value" not in result


def test_escaped_reference_stays_literal(project: SpecProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_TARGET", "leaked-value")
    assert _description(project, "$${CANARY_TARGET}") == "${CANARY_TARGET}"


@pytest.mark.parametrize(
    "text",
    ["!!python/object/apply:os.system ['touch pwned']\n",
     "name: !!python/name:os.system\n",
     "%TAG !x! tag:yaml.org,2002:python/\n---\nname: !x!object/apply:os.system ['touch pwned']\n",
     "name: !!binary aGVsbG8=\n"],
)
def test_unsafe_tags_never_construct_objects(project: SpecProject, capsys: pytest.CaptureFixture[str],
                                             text: str) -> None:
    project.write(text)
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3, out + err
    assert "Traceback" not in out + err
    assert LOCATED.search(out + err), out + err
    assert not (project.root / "pwned").exists()


def test_non_utf8_and_nul_bytes_are_located(project: SpecProject,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    project.write(_header().encode() + b"\ndescription: caf\xe9\n")
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3 and "not valid UTF-8" in out + err
    assert re.search(r"specs/job\.yaml:\d+:\d+: ", out + err)
    project.write(_header().encode() + b"\ndescription: a\x00b\n")
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3 and LOCATED.search(out + err), out + err


@pytest.mark.parametrize("value", ["../../escaped.jsonl", "/tmp/agentflow-escaped.jsonl", "~/x.jsonl"])
def test_a_path_from_a_variable_is_checked_after_expansion(
        project: SpecProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        value: str) -> None:
    monkeypatch.setenv("OUTPUT_TARGET", value)
    project.write_spec(output={"path": "${OUTPUT_TARGET}"})
    assert_refused(capsys, project, "points outside the workspace root")


def test_a_nested_default_is_a_located_error(
        project: SpecProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_TARGET", "leaked-value")
    monkeypatch.delenv("UNSET_X", raising=False)
    project.write(_header() + '\ndescription: "${UNSET_X:-${CANARY_TARGET}}"\n'
                  "input: {path: ../data/in.jsonl}\noutput: {path: ../out/out.jsonl}\n")
    code, out, err = run_cli(capsys, "validate", "specs")
    assert code == 3, out + err
    assert LOCATED.search(out + err)
