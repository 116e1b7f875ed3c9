"""Fuzz properties of the three parsers that read untrusted text: specs, templates, inputs.

Each ``fuzz_*`` function runs one hypothesis property with ``max_examples`` and raises
on the first input that ends in anything but a clean result or a located error. The
tests call them with a few hundred examples (~10 s in all); `make chaos` with thousands.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow_jobs.errors import (
    InputError,
    OperationInputError,
    SpecError,
)
from agentflow_jobs.errors import (
    TemplateError as RenderTemplateError,
)
from agentflow_jobs.io.readers import read_items
from agentflow_jobs.operations.templates import render
from agentflow_jobs.operations.templates import template_fields as render_fields
from agentflow_jobs.spec import load_specs

_YAML_BITS = [
    "apiVersion: agentflow-jobs/v1\n", "kind: Job\n", "name: fuzz\n", "operation: run\n",
    "operation: classify\n", "categories: [a, b]\n", "user_prompt_template: '{content}'\n",
    "input: {path: in.jsonl}\n", "output: {path: out.jsonl}\n", "output: {path: /etc/x}\n",
    "input: {path: ../../x}\n", "a: &a [1, 2]\n", "b: *a\n", "<<: *a\n", "c: *nope\n",
    "---\n", "...\n", "%YAML 1.1\n", "!!python/object/apply:os.system ['id']\n",
    "x: !!binary aGk=\n", "? complex\n", "- item\n", "  nested:\n", "\t", " ", ": ", "|\n", ">-\n",
    "'", '"', "[", "]", "{", "}", "${HOME}", "${${X}}", "${X:-${Y}}", "$${Z}", "{0}",
    "{content.__class__}", "\ufeff", "\x00", "\u2028", "# comment\n", "\n", "\r\n", "key: 1e999\n",
]
_TEMPLATE_BITS = ["{", "}", "{{", "}}", "{content}", "{0}", "{x[0]}", "{content.__init__.__globals__}",
                  "{a!r}", "{a:>10}", "{}", "{-a}", "{_x}", "{é}", "text", " ", "\n", "%s", "${X}"]
_INPUT_BITS = ['{"content": "a"}\n', '{"id": 1, "content": "b"}\n', "[", "]", ",", '"', "{", "}",
               "content,id\n", "x,1\n", '"a""b",2\n', "\n", "\r\n", "\x00", "\xff", "null\n", "1\n",
               '{"content": "torn', "\ufeff", "[{}]", '[{"content": "x"},', "\u00e9"]


def _texts(bits: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(bits), st.text(max_size=8)), max_size=24).map("".join)


def _settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def fuzz_spec_loader(max_examples: int) -> int:
    """Random YAML-ish text or bytes → jobs, or a SpecError whose problems are all located."""
    seen = [0]
    with tempfile.TemporaryDirectory(prefix="fuzz-spec-") as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        spec = root / "fuzz.yaml"

        @_settings(max_examples)
        @given(st.one_of(_texts(_YAML_BITS).map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=400)))
        def check(data: bytes) -> None:
            seen[0] += 1
            spec.write_bytes(data)
            try:
                load_specs([spec], root=root)
            except SpecError as exc:
                assert exc.problems, "a SpecError without problems"
                for problem in exc.problems:
                    assert problem.line >= 1 and problem.column >= 1, problem
                    assert problem.message and "Traceback" not in problem.message, problem

        check()
    return seen[0]


def fuzz_templates(max_examples: int) -> int:
    """Any template → its fields or a located TemplateError; render never evaluates."""
    seen = [0]

    @_settings(max_examples)
    @given(_texts(_TEMPLATE_BITS),
           st.dictionaries(st.sampled_from(["content", "a", "_x", "x", "0"]), st.text(max_size=5)))
    def check(template: str, item: dict[str, Any]) -> None:
        seen[0] += 1
        try:
            fields = render_fields(template)
        except RenderTemplateError as exc:
            assert 0 <= exc.offset <= len(template), exc.offset
            return
        try:
            text = render(template, item)
        except OperationInputError as exc:
            assert exc.code == "missing_field"
            assert any(name not in item for name in fields)
            return
        assert "<" not in text or "<" in template + "".join(item.values()), text

    check()
    return seen[0]


def fuzz_readers(max_examples: int) -> int:
    """Any bytes in any input format → items or per-item errors with lines, or InputError."""
    seen = [0]
    with tempfile.TemporaryDirectory(prefix="fuzz-input-") as tmp:
        root = Path(tmp)

        @_settings(max_examples)
        @given(st.sampled_from(["jsonl", "csv", "json", "txt"]),
               st.one_of(_texts(_INPUT_BITS).map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=300)))
        def check(fmt: str, data: bytes) -> None:
            seen[0] += 1
            path = root / f"input.{fmt}"
            path.write_bytes(data)
            try:
                items = list(read_items(path, format=fmt))
            except InputError as exc:
                assert exc.path, exc
                return
            for number, item in enumerate(items):
                assert item.index == number, (item.index, number)
                assert item.line >= 1
                assert (item.record is None) != (item.error is None), item
                if item.record is not None:
                    assert isinstance(item.record, dict)

        check()
    return seen[0]


def fuzz_all(max_examples: int) -> dict[str, Any]:
    """All three properties; failures are reported (for `make chaos`), not raised."""
    figures: dict[str, Any] = {"max_examples": max_examples}
    ok = True
    for name, fuzz in (("spec_loader", fuzz_spec_loader), ("templates", fuzz_templates),
                       ("readers", fuzz_readers)):
        try:
            figures[name] = {"examples": fuzz(max_examples), "failure": None}
        except Exception as exc:  # the falsifying example is the figure we want
            figures[name] = {"examples": None, "failure": f"{type(exc).__name__}: {exc}"[:2000]}
            ok = False
    figures["ok"] = ok
    return figures
