"""Load and validate job specs: every problem in every file, each one located.

Phases per document: safe YAML loading (``documents``), the JSON Schema over the raw
document (errors mapped to node positions, best match first), the semantic ``rules``,
then the models. Across files: unique job names, one writer per output file, no
dependency cycles. ``load_specs`` raises one ``SpecError`` holding all of it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import pydantic
from jsonschema import (
    Draft202012Validator,
    ValidationError,
)
from jsonschema.exceptions import (
    best_match,
    relevance,
)

from agentflow_jobs.errors import Problem, SpecError, UsageError
from agentflow_jobs.spec.documents import Document, JsonPath, Mark, load_documents
from agentflow_jobs.spec.models import JobSpec
from agentflow_jobs.spec.rules import RULES, Reporter, display_path, dotted, resolve_spec_path
from agentflow_jobs.spec.schema import job_spec_schema

__all__ = ["discover_spec_files", "find_root", "load_specs"]

_SPEC_SUFFIXES = (".yaml", ".yml")
_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping", "null": "null",
}
_PATTERNS = {
    "^[a-z0-9][a-z0-9_-]*$": "lowercase letters, digits, `-` and `_`, starting with a letter or digit",
}


def find_root(root: Path | None = None, *, start: Path | None = None) -> Path:
    """The workspace root: ``root`` if given, else the nearest ancestor holding ``.git``,
    else the working directory."""
    if root is not None:
        return root.resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return here


def discover_spec_files(paths: Sequence[Path]) -> list[Path]:
    """Spec files named by ``paths``: files as given, directories searched recursively."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.suffix.lower() in _SPEC_SUFFIXES and child.is_file() and not hidden:
                    found.setdefault(child.resolve())
        elif path.exists():
            found.setdefault(path.resolve())
        else:
            raise UsageError(f"{path}: no such file or directory")
    return list(found)


def load_specs(paths: Sequence[Path], *, root: Path | None = None) -> list[JobSpec]:
    """Load every job in ``paths``; raise SpecError naming every problem found."""
    workspace = find_root(root)
    problems: list[Problem] = []
    jobs: list[tuple[JobSpec, Document]] = []
    named: list[tuple[str, Document]] = []
    for file in discover_spec_files(paths):
        documents, found = load_documents(file, display_path(file))
        problems += found
        for doc in documents:
            spec, found = _check_document(doc, workspace)
            problems += found
            if spec is not None:
                jobs.append((spec, doc))
            name = _raw_name(doc)
            if name is not None:
                named.append((name, doc))
    problems += _cross_file_problems(named)
    problems += _cycle_problems(jobs)
    if problems:
        raise SpecError(_dedupe(problems))
    return [spec for spec, _ in jobs]


def _check_document(doc: Document, root: Path) -> tuple[JobSpec | None, list[Problem]]:
    if doc.data is None:
        return None, []  # an empty document (a stray `---`) holds no job
    if not isinstance(doc.data, dict):
        kind = _describe(doc.data)
        return None, [doc.problem(doc.value_mark(()), f"a job spec must be a mapping of keys, got {kind}")]
    problems = list(_schema_problems(doc))
    report = Reporter(doc, root)
    for rule in RULES:
        rule(doc.data, report)
    problems += report.problems
    if problems:
        return None, problems
    try:
        spec = JobSpec.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        return None, [_pydantic_problem(doc, error) for error in exc.errors()]
    spec.bind_source(doc.path, doc.index, doc.value_mark(()).line, report.prompts)
    return spec, []


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(job_spec_schema())


# about a value itself, one error is enough; `must be one of a, b` says more than `must be a string`
_VALUE_CHECK_RANK = {"const": 0, "enum": 0, "type": 1}


def _schema_problems(doc: Document) -> Iterator[Problem]:
    errors = sorted(_validator().iter_errors(doc.data), key=relevance, reverse=True)
    about_value: dict[tuple[Any, ...], ValidationError] = {}
    for error in errors:
        if error.context:
            error = best_match(error.context) or error
        if error.validator in ("required", "additionalProperties"):
            yield from _schema_problem(doc, error)
            continue
        path = tuple(error.absolute_path)
        kept = about_value.get(path)
        if kept is None or _VALUE_CHECK_RANK.get(str(error.validator), 2) < _VALUE_CHECK_RANK.get(str(kept.validator), 2):
            about_value[path] = error
    for error in about_value.values():
        yield from _schema_problem(doc, error)


def _schema_problem(doc: Document, error: ValidationError) -> Iterator[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    name, value, kind = dotted(path), error.instance, str(error.validator)
    if kind == "required":
        schema = error.schema if isinstance(error.schema, dict) else {}
        for key in cast(Any, error.validator_value):
            if isinstance(value, dict) and key not in value:
                about = schema.get("properties", {}).get(key, {}).get("description")
                where = f" in `{name}`" if path else ""
                hint = f"{key}: {about}" if about else None
                yield doc.problem(doc.value_mark(path), f"missing required key `{key}`{where}", hint)
        return
    if kind == "additionalProperties":
        yield from _unknown_keys(doc, path, error)
        return
    message, hint = _message(name, kind, error.validator_value, value)
    yield doc.problem(doc.value_mark(path), message, hint)


def _unknown_keys(doc: Document, path: JsonPath, error: ValidationError) -> Iterator[Problem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = list(schema.get("properties", {}))
    where = f" in `{dotted(path)}`" if path else ""
    for key in cast(Any, error.instance):
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"expected one of: {', '.join(allowed)}"
        yield doc.problem(doc.key_mark((*path, key)), f"unknown key `{key}`{where}", hint)


def _message(name: str, kind: str, expected: Any, value: Any) -> tuple[str, str | None]:
    got = _describe(value)
    if kind == "type":
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        return f"`{name}` must be {wanted}, got {got}", None
    if kind == "enum":
        close = difflib.get_close_matches(str(value), [str(e) for e in expected], n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else None
        return f"`{name}` must be one of {', '.join(str(e) for e in expected)}; got {got}", hint
    if kind == "const":
        return f"`{name}` must be `{expected}`, got {got}", None
    if kind == "pattern":
        rule = _PATTERNS.get(expected, f"the pattern `{expected}`")
        return f"`{name}` must use {rule}; got {got}", None
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return f"`{name}` must be {bounds[kind]} {expected}, got {got}", None
    if kind == "minItems":
        return f"`{name}` needs at least {expected} item{'s' if expected != 1 else ''}", None
    if kind == "minLength":
        return f"`{name}` must not be empty", None
    if kind == "maxLength":
        return f"`{name}` must be at most {expected} characters long", None
    return f"`{name}` is invalid ({kind}: {json.dumps(expected, default=str)[:80]})", None


def _describe(value: Any) -> str:
    """A value as a YAML user would name it, never a Python repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string `{shown}`" if shown else "an empty string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _pydantic_problem(doc: Document, error: Any) -> Problem:
    path = tuple(p for p in error.get("loc", ()) if isinstance(p, str | int))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return doc.problem(doc.value_mark(path), f"`{dotted(path)}`: {message}")


def _raw_name(doc: Document) -> str | None:
    """The job name as written, whether or not the rest of the document is valid."""
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    return name if isinstance(name, str) else None


def _raw_output(doc: Document) -> Path | None:
    output = doc.data.get("output") if isinstance(doc.data, dict) else None
    path = output.get("path") if isinstance(output, dict) else None
    if not isinstance(path, str) or not path:
        return None
    table = output.get("table") if isinstance(output, dict) else None
    # one database holds many outputs: a table output is the URL and the table
    return resolve_spec_path(doc, f"{path}#{table}" if isinstance(table, str) else path)


def _cross_file_problems(named: list[tuple[str, Document]]) -> list[Problem]:
    """Unique names and one writer per output, over every named document: a job with
    another problem still clashes, and saying so now saves a second round of fixes."""
    problems: list[Problem] = []
    names: dict[str, tuple[Document, Mark]] = {}
    writers: dict[Path, tuple[str, Document]] = {}
    for name, doc in named:
        output, here = _raw_output(doc), doc.value_mark(("name",))
        if name in names:
            first_doc, first = names[name]
            problems.append(doc.problem(
                here, f"duplicate job name `{name}`; first defined at {first_doc.display}:{first.line}:{first.column}",
                "job names must be unique across all spec files",
            ))
        else:
            names[name] = (doc, here)
        if output is None:
            continue
        if output in writers:
            other, other_doc = writers[output]
            mark = other_doc.value_mark(("output", "path"))
            problems.append(doc.problem(
                doc.value_mark(("output", "path")),
                f"job `{other}` writes the same output file ({other_doc.display}:{mark.line}:{mark.column})",
            ))
        else:
            writers[output] = (name, doc)
    return problems


def _cycle_problems(jobs: list[tuple[JobSpec, Document]]) -> list[Problem]:
    """Jobs run in the order their files flow (an output feeding an input): no cycles."""
    writers: dict[Path, str] = {}
    for spec, _ in jobs:
        writers.setdefault(spec.output_path, spec.name)
    upstream = {spec.name: writers[spec.input_path] for spec, _ in jobs if spec.input_path in writers}
    where = {spec.name: doc for spec, doc in jobs}
    reported: set[str] = set()
    problems: list[Problem] = []
    for start in upstream:
        chain, current = [start], upstream.get(start)
        while current is not None and current not in chain:
            chain.append(current)
            current = upstream.get(current)
        if current == start and start not in reported:
            reported.update(chain)
            cycle = " <- ".join([*chain, start])
            doc = where[start]
            problems.append(doc.problem(
                doc.value_mark(("input", "path")),
                f"jobs feed each other's inputs in a cycle: {cycle}",
                "an input may come from another job's output, but not in a loop",
            ))
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, int, int, str]] = set()
    kept = []
    for problem in problems:
        key = (problem.path, problem.line, problem.column, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept
