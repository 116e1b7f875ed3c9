"""Safe loading: positions, interpolation, limits, and never an uncaught exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow_jobs.errors import Problem, SpecError
from agentflow_jobs.spec import load_specs
from agentflow_jobs.spec.documents import MAX_FILE_BYTES, Mark, load_documents


def _load(tmp_path: Path, text: str | bytes) -> tuple[list[object], list[Problem]]:
    path = tmp_path / "spec.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    docs, problems = load_documents(path, "spec.yaml")
    return [d.data for d in docs], problems


def test_keys_and_values_keep_their_1_based_positions(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("# comment\nname: a\ninput:\n  path: in.jsonl\nlist:\n  - x\n  - y\n")
    [doc], problems = load_documents(path, "spec.yaml")
    assert problems == []
    assert doc.key_mark(("input", "path")) == Mark(4, 3)
    assert doc.value_mark(("input", "path")) == Mark(4, 9)
    assert doc.value_mark(("list", 1)) == Mark(7, 5)
    assert doc.value_mark(("input",)) == Mark(4, 3)  # a mapping starts at its first key
    assert doc.value_mark(("nope", "deeper")) == Mark(2, 1)  # nearest located ancestor


def test_several_documents_keep_their_index(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a: 1\n---\nb: 2\n---\n")
    docs, problems = load_documents(path, "spec.yaml")
    assert problems == []
    assert [(d.index, d.data) for d in docs] == [(0, {"a": 1}), (1, {"b": 2}), (2, None)]


def test_variables_expand_with_defaults_and_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLOW_TEST_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("AGENTFLOW_TEST_N", "12")
    data, problems = _load(
        tmp_path,
        "model: ${AGENTFLOW_TEST_MODEL}\n"
        "profile: ${AGENTFLOW_TEST_UNSET:-local}\n"
        "n: ${AGENTFLOW_TEST_N}\n"
        "quoted: '${AGENTFLOW_TEST_N}'\n"
        "literal: price $${AMOUNT}\n",
    )
    assert problems == []
    assert data == [
        {"model": "gpt-4o-mini", "profile": "local", "n": 12, "quoted": "12", "literal": "price ${AMOUNT}"}
    ]


def test_unset_variable_is_named_at_its_reference(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, "a: 1\nmodel: 'x-${AGENTFLOW_TEST_UNSET}'\n")
    assert [str(p) for p in problems] == [
        "spec.yaml:2:11: environment variable `AGENTFLOW_TEST_UNSET` is not set "
        "(write ${AGENTFLOW_TEST_UNSET:-default} to give a default)"
    ]


def test_yaml_dates_and_keys_stay_text(tmp_path: Path) -> None:
    data, problems = _load(tmp_path, "on: 2024-01-02\n1: yes\n")
    assert problems == []
    assert data == [{"on": "2024-01-02", "1": True}]


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, "a: " + "x" * MAX_FILE_BYTES + "\n")
    assert len(problems) == 1
    assert str(problems[0]).startswith("spec.yaml:1:1: file is ")
    assert "limited to 1 MiB" in problems[0].message


def test_a_billion_laughs_file_is_refused_at_the_first_anchor(tmp_path: Path) -> None:
    text = 'a: &a ["lol","lol"]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n'
    data, problems = _load(tmp_path, text)
    assert data == []
    assert [str(p) for p in problems] == [
        "spec.yaml:1:4: anchor `&a` is not supported in job specs; write the value out "
        "(or split shared settings into separate jobs)"
    ]


def test_control_characters_are_located(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, "a: 1\nb: x\x07y\n")
    assert [str(p) for p in problems] == ["spec.yaml:2:5: character U+0007 is not allowed in YAML"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    data, problems = _load(tmp_path, b"\xef\xbb\xbfa: 1\n")
    assert (data, problems) == ([{"a": 1}], [])


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    link = tmp_path / "z.yaml"
    link.symlink_to("/dev/zero")
    assert load_documents(link, "z.yaml") == ([], [
        Problem("z.yaml", 1, 1, "not a regular file (a character device); job specs must be plain files")
    ])


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    _, [problem] = load_documents(fifo, "p.yaml")
    assert str(problem) == "p.yaml:1:1: not a regular file (a named pipe); job specs must be plain files"


def test_a_directory_named_like_a_spec_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    _, [problem] = load_documents(tmp_path / "d.yaml", "d.yaml")
    assert problem.message == "not a regular file (a directory); job specs must be plain files"


def test_a_prompt_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "prompt.txt")
    (tmp_path / "in.jsonl").write_text("{}\n")
    (tmp_path / "spec.yaml").write_text(
        "apiVersion: agentflow-jobs/v1\nkind: Job\nname: a\noperation: run\n"
        "user_prompt_template_file: prompt.txt\ninput:\n  path: in.jsonl\noutput:\n  path: out.jsonl\n"
    )
    with pytest.raises(SpecError) as caught:
        load_specs([tmp_path / "spec.yaml"], root=tmp_path)
    assert [p.message for p in caught.value.problems] == [
        f"prompt file `{tmp_path / 'prompt.txt'}` is not a regular file (a named pipe)"
    ]


def _assert_located(problems: list[Problem]) -> None:
    for problem in problems:
        assert problem.path == "spec.yaml"
        assert problem.line >= 1 and problem.column >= 1
        assert problem.message and "Traceback" not in problem.message


_YAML_ALPHABET = st.sampled_from(
    [
        *"abc:- \n\t{}[],&*!|>'\"#%@`?$~0123456789.",
        *("${X}", "---", "\r", "\x00", "é", "&a ", "*a", "? ", "!!python/object "),
        *("!!int ", "!!float ", "!!bool ", "!!binary ", "!!set ", "!!omap ", "!!timestamp "),
        *("apiVersion: agentflow-jobs/v1\n", "kind: Job\n", "name: x\n", "operation: run\n"),
        *("input:\n  path: a.jsonl\n", "user_prompt_template: ", "{content.x}"),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_YAML_ALPHABET, max_size=60).map("".join))
def test_random_yaml_text_never_raises(tmp_path: Path, text: str) -> None:
    _, problems = _load(tmp_path, text)
    _assert_located(problems)
    try:
        load_specs([tmp_path / "spec.yaml"], root=tmp_path)
    except SpecError as exc:
        assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(tmp_path: Path, raw: bytes) -> None:
    _, problems = _load(tmp_path, raw)
    _assert_located(problems)
