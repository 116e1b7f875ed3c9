"""Semantic rules for one job-spec document, beyond what the JSON Schema says.

Each rule reads the raw document defensively (it runs even when the schema found
problems, so a user sees everything at once) and reports through a ``Reporter`` that
knows where each key and value sits in the file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from agentflow_jobs.errors import NotRegularFileError, Problem
from agentflow_jobs.io.locations import location_kind
from agentflow_jobs.operations.base import fold, look_alike
from agentflow_jobs.operations.extract import non_object_root
from agentflow_jobs.operations.templates import template_problems
from agentflow_jobs.spec.destinations import check_destinations
from agentflow_jobs.spec.documents import MAX_FILE_BYTES, Document, JsonPath, read_limited
from agentflow_jobs.spec.models import OPERATION_FIELDS, JobSpec, default_format
from agentflow_jobs.wire import normalize_operation

__all__ = ["RULES", "Reporter", "display_path", "dotted", "resolve_spec_path"]

_JSON_TYPES = "string, number, integer, boolean, array, object, null"
_KNOWN_KEYS = frozenset(field.alias or name for name, field in JobSpec.model_fields.items())
_ALL_OPERATION_FIELDS = {name: kind for kind, names in OPERATION_FIELDS.items() for name in names}
_USED_BY = {"label": "classify", "extract": "extract", "summarize": "summarize", "enrich": "enrich", "run": "run"}


def dotted(path: JsonPath) -> str:
    """``('fields', 0, 'type')`` → ``fields[0].type``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "document"


def display_path(path: Path) -> str:
    """A path for messages: relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


@dataclass
class Reporter:
    """Collects problems for one document, located at keys, values or inside strings."""

    doc: Document
    root: Path
    problems: list[Problem] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)

    def at_value(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.doc.problem(self.doc.value_mark(path), message, hint))

    def at_key(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.doc.problem(self.doc.key_mark(path), message, hint))

    def at_offset(self, path: JsonPath, offset: int, message: str) -> None:
        self.problems.append(self.doc.problem(self.doc.offset_mark(path, offset), message))

    def elsewhere(self, problem: Problem) -> None:
        self.problems.append(problem)


Rule = Callable[[dict[str, Any], Reporter], None]


def _get(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _kind(data: dict[str, Any]) -> str | None:
    operation = data.get("operation")
    if not isinstance(operation, str):
        return None
    kind, custom = normalize_operation(operation)
    return None if custom else kind


def check_operation_fields(data: dict[str, Any], report: Reporter) -> None:
    """Each operation's required fields are present; other operations' fields are not."""
    kind = _kind(data)
    if kind is None:
        return
    for key in data:
        owner = _ALL_OPERATION_FIELDS.get(key)
        if owner is not None and owner != kind:
            report.at_key(
                (key,),
                f"`{key}` is not used by operation `{data['operation']}`",
                f"it belongs to `{_USED_BY[owner]}`; remove it or change `operation`",
            )
    _REQUIREMENTS[kind](data, report)


def _need(data: dict[str, Any], report: Reporter, keys: Iterable[str], message: str) -> None:
    keys = list(keys)
    if not any(data.get(k) not in (None, "", []) for k in keys) and not _misspelled(data, keys):
        report.at_value((), message)


def _misspelled(data: dict[str, Any], keys: list[str]) -> bool:
    """True when an unknown key is a near miss of one of ``keys`` (reported already)."""
    unknown = [k for k in data if k not in _KNOWN_KEYS]
    return any(difflib.get_close_matches(k, keys, n=1, cutoff=0.6) for k in unknown)


def _label(data: dict[str, Any], report: Reporter) -> None:
    categories = data.get("categories")
    if categories is None:
        message = f"operation `{data['operation']}` needs `categories` (at least 2 distinct labels)"
        _need(data, report, ["categories"], message)
        return
    if not isinstance(categories, list):
        return
    seen: set[str] = set()
    folded: dict[str, str] = {}
    for i, cat in enumerate(categories):
        if isinstance(cat, str) and not cat.strip():
            report.at_value(("categories", i), "empty category")
        elif isinstance(cat, str) and cat in seen:
            report.at_value(("categories", i), f"duplicate category `{cat}`")
        elif isinstance(cat, str):
            seen.add(cat)
            _check_folded(folded, cat, ("categories", i), "categories", report)
    if len(seen) < 2:
        report.at_value(("categories",), f"`categories` needs at least 2 distinct labels, got {len(seen)}")


def _check_folded(first: dict[str, str], value: str, at: JsonPath, what: str, report: Reporter) -> None:
    """Report ``value`` when an earlier one differs from it only in case, spacing or Unicode form.

    The operations match replies leniently, so such values would be mixed up; the
    engine refuses them too (``InvalidRequest``).
    """
    earlier = first.setdefault(fold(value), value)
    if earlier != value:
        report.at_value(at, look_alike(what, earlier, value))


def _extract(data: dict[str, Any], report: Reporter) -> None:
    _need(data, report, ("extraction_instructions", "output_schema"),
          "operation `extract` needs `extraction_instructions` (or an `output_schema`)")
    schema = data.get("output_schema")
    if _check_schema(schema, ("output_schema",), report) and isinstance(schema, dict):
        problem = non_object_root(schema, what="`output_schema`")
        if problem is not None:
            report.at_value(("output_schema", "type"), problem)


def _summarize(data: dict[str, Any], report: Reporter) -> None:
    """summary_instructions are optional."""


def _enrich(data: dict[str, Any], report: Reporter) -> None:
    fields = data.get("fields")
    if fields is None:
        _need(data, report, ["fields"], "operation `enrich` needs `fields` (at least one)")
        return
    if fields == []:
        report.at_value(("fields",), "operation `enrich` needs `fields` (at least one)")
        return
    if not isinstance(fields, list):
        return
    names: dict[str, int] = {}
    for i, spec in enumerate(fields):
        if not isinstance(spec, dict):
            continue
        name = spec.get("name")
        if isinstance(name, str) and name in names:
            report.at_value(("fields", i, "name"), f"duplicate field name `{name}` (also fields[{names[name]}])")
        elif isinstance(name, str):
            names[name] = i
        kind = spec.get("type", "string")
        values = spec.get("valid_values")
        if kind == "categorical" and not values:
            report.at_value(("fields", i), f"categorical field `{name}` needs `valid_values`")
        elif kind == "categorical" and isinstance(values, list):
            folded: dict[str, str] = {}
            for j, value in enumerate(values):
                if isinstance(value, str):
                    _check_folded(folded, value, ("fields", i, "valid_values", j), "valid_values", report)
        elif kind != "categorical" and "valid_values" in spec:
            report.at_key(("fields", i, "valid_values"), f"`valid_values` only applies to `type: categorical`, not `{kind}`")


def _run(data: dict[str, Any], report: Reporter) -> None:
    _need(data, report, ("user_prompt_template", "user_prompt_template_file"),
          "operation `run` needs `user_prompt_template` (or `user_prompt_template_file`)")
    fmt = data.get("response_format")
    if isinstance(fmt, dict):
        schema = fmt.get("json_schema")
        if fmt.get("type") == "json_schema" and not isinstance(_get(schema, "schema"), dict):
            report.at_value(("response_format",), "`type: json_schema` needs `json_schema: {name, schema}`")
        elif fmt.get("type") != "json_schema" and schema is not None:
            report.at_key(("response_format", "json_schema"), "`json_schema` only applies to `type: json_schema`")
        else:
            inner = _get(schema, "schema")
            at = ("response_format", "json_schema", "schema")
            if _check_schema(inner, at, report) and isinstance(inner, dict):
                problem = non_object_root(inner, what="`response_format.json_schema.schema`")
                if problem is not None:
                    report.at_value((*at, "type"), problem)


_REQUIREMENTS: dict[str, Rule] = {
    "label": _label, "extract": _extract, "summarize": _summarize, "enrich": _enrich, "run": _run,
}


def _check_schema(schema: Any, path: JsonPath, report: Reporter) -> bool:
    """Report where ``schema`` is not a valid JSON Schema; True when it is one."""
    if not isinstance(schema, dict):
        return False
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        return True
    except jsonschema.SchemaError as exc:
        where = (*path, *(p for p in exc.path if isinstance(p, str | int)))
        if where and where[-1] == "type":
            message = f"`{exc.instance}` is not a JSON Schema type (expected one of {_JSON_TYPES})"
        else:
            message = f"`{dotted(where)}` is not valid in a JSON Schema (its `{exc.validator}` rule fails)"
        report.at_value(where, f"`{dotted(path)}` is not a valid JSON Schema: {message}")
        return False


def check_templates(data: dict[str, Any], report: Reporter) -> None:
    """Templates use plain ``{field}`` placeholders only."""
    template = data.get("user_prompt_template")
    if isinstance(template, str):
        for error in template_problems(template):
            report.at_offset(("user_prompt_template",), error.offset, error.message)


def check_prompt_files(data: dict[str, Any], report: Reporter) -> None:
    """Prompt files: not together with the inline form, inside the root, readable."""
    for key in ("system_prompt_file", "user_prompt_template_file"):
        inline = key.removesuffix("_file")
        if key in data and inline in data:
            report.at_key((key,), f"set either `{inline}` or `{key}`, not both")
        value = data.get(key)
        if not isinstance(value, str) or not value:
            continue
        path = resolve_spec_path(report.doc, value)
        if not _inside_root(report, (key,), value, path):
            continue
        text = _read_prompt(report, (key,), path)
        if text is None:
            continue
        report.prompts[key] = text
        if key == "user_prompt_template_file":
            _check_template_file(report, path, text)


def _read_prompt(report: Reporter, at: JsonPath, path: Path) -> str | None:
    try:
        raw = read_limited(path, MAX_FILE_BYTES)
        if len(raw) > MAX_FILE_BYTES:
            report.at_value(at, f"prompt file `{display_path(path)}` is over 1 MiB")
            return None
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        report.at_value(at, f"prompt file `{display_path(path)}` does not exist")
    except NotRegularFileError as exc:
        # a directory, a pipe (which would block) or a device like /dev/zero (endless)
        kind = "a directory" if exc.kind == "a directory" else f"not a regular file ({exc.kind})"
        report.at_value(at, f"prompt file `{display_path(path)}` is {kind}")
    except UnicodeDecodeError:
        report.at_value(at, f"prompt file `{display_path(path)}` is not valid UTF-8")
    except OSError as exc:
        report.at_value(at, f"cannot read prompt file `{display_path(path)}`: {exc.strerror or exc}")
    return None


def _check_template_file(report: Reporter, path: Path, text: str) -> None:
    job = report.doc.data.get("name") if isinstance(report.doc.data, dict) else None
    for error in template_problems(text):
        line = text.count("\n", 0, error.offset) + 1
        column = error.offset - (text.rfind("\n", 0, error.offset) + 1) + 1
        report.elsewhere(Problem(display_path(path), line, column, error.message, None,
                                 job if isinstance(job, str) else None))


def check_data_paths(data: dict[str, Any], report: Reporter) -> None:
    """Input and output paths stay inside the root; formats are known; output ≠ input."""
    resolved: dict[str, Path] = {}
    for section, key in (("input", "path"), ("output", "path"), ("output", "errors_path")):
        value = _get(data, section, key)
        if isinstance(value, str) and value and location_kind(value) == "local":
            path = resolve_spec_path(report.doc, value)
            if _inside_root(report, (section, key), value, path):
                resolved[f"{section}.{key}"] = path
    _check_format(data, report, "input", ("jsonl", "csv", "json", "txt", "parquet"))
    _check_format(data, report, "output", ("jsonl", "csv", "json", "parquet"))
    out = resolved.get("output.path")
    if out is not None and out == resolved.get("input.path"):
        report.at_value(("output", "path"), "`output.path` is the same file as `input.path`")
    if out is not None and out == resolved.get("output.errors_path"):
        report.at_value(("output", "errors_path"), "`output.errors_path` is the same file as `output.path`")


def _check_format(data: dict[str, Any], report: Reporter, section: str, allowed: tuple[str, ...]) -> None:
    path = _get(data, section, "path")
    if not isinstance(path, str) or _get(data, section, "format") is not None:
        return
    if location_kind(path) in ("sql", "unknown"):
        return  # check_destinations reports these
    fmt = default_format(path)
    if fmt not in allowed:
        ext = Path(path).suffix or "(none)"
        report.at_value(
            (section, "path"),
            f"cannot tell the format of `{path}` from its extension `{ext}`",
            f"set `{section}.format` to one of {', '.join(allowed)}",
        )


def resolve_spec_path(doc: Document, value: str) -> Path:
    """A path written in ``doc``, made absolute against its file's directory (as JobSpec does)."""
    return Path(os.path.normpath(doc.path.resolve().parent / os.path.expanduser(value)))


def _inside_root(report: Reporter, at: JsonPath, value: str, path: Path) -> bool:
    unusable = _unusable(value)
    if unusable is not None:
        report.at_value(at, f"`{dotted(at)}` contains {unusable}, which no file name can hold",
                        "in double quotes YAML reads \\0 as NUL: write the path in single quotes, "
                        "or with / between folders")
        return False
    root = report.root
    for candidate in (path, path.resolve()):
        if not candidate.is_relative_to(root):
            report.at_value(
                at,
                f"`{dotted(at)}` `{value}` points outside the workspace root {root}",
                "keep job files inside the workspace, or pass --root",
            )
            return False
    return True


def _unusable(value: str) -> str | None:
    """What in a path no file system takes: a NUL, or text that is not Unicode."""
    if "\0" in value:
        return "a NUL character (\\0)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a character that is not Unicode text (a lone surrogate)"
    return None


RULES: tuple[Rule, ...] = (
    check_operation_fields, check_templates, check_prompt_files, check_data_paths, check_destinations
)
