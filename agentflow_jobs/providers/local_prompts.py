"""Prompts for a small base model, built from an operation's ``TaskHint``.

Gemma 3 270M is not instruction-tuned: chat-style instructions ("You are a classifier...")
work poorly, short few-shot completions work. So the local provider ignores the chat
messages an operation wrote for instruction models and plans its own completions:

- every string enum in the reply schema (a label, a categorical enrich field) becomes a
  ``ChoiceTask``: a prompt ending just before the answer, scored choice by choice;
- everything else is generated once, after ``JSON:``, under a grammar of the schema.

Pure functions only: no llama.cpp here, so the prompts are testable without the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentflow_jobs.chat import ChatRequest, TaskHint
from agentflow_jobs.providers.local_schema import with_room

__all__ = [
    "ChoiceTask",
    "ReplyPlan",
    "implied_schema",
    "item_text",
    "plan_reply",
]

_TEMPLATE_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]{0,40})"\s*:\s*([a-z]*)')
_EXTRACT_LIST = re.compile(r"\b[Ee]xtract\s+(?:the\s+)?([^.:\n]{1,200})")
# Implied keys may be absent from the text; the examples show null for them.
_TEXT_OR_NULL: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "null"}]}

# Worked examples for common choice sets. A 270M base model cannot map opaque labels
# ("smb") from instructions alone: zero-shot company-size scoring measured 33 % on the eval
# set, near chance; with these examples (and calibration) ~71 %. Sentiment: ~74 %. A
# choice set with no examples here is scored zero-shot. The texts are invented and kept
# apart from tests/data/eval.
_EXAMPLE_SETS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("Sturdy, quiet and easy to clean. Best purchase this year.", "positive"),
        ("Stopped charging after a week and support never replied.", "negative"),
        ("Nice screen, but the battery barely lasts a morning.", "mixed"),
        ("It arrived on Tuesday in a brown box.", "neutral"),
        ("The soles fell apart within a month. Avoid.", "negative"),
        ("Comfortable and warm, though the zip feels flimsy.", "mixed"),
        ("Wonderful flavour, I have already ordered more.", "positive"),
    ),
    (
        ("A neighbourhood pizzeria with 10 employees.", "smb"),
        ("A multinational bank with 60,000 employees worldwide.", "enterprise"),
        ("A software company with 350 employees in two countries.", "mid-market"),
        ("A one-person accounting practice.", "smb"),
        ("A regional manufacturer with 700 staff.", "mid-market"),
        ("A global technology corporation with offices in 50 countries.", "enterprise"),
    ),
)

# One annotated record per line of the few-shot block for generated JSON; a schema's
# property takes the value of the same-named key here, when there is one.
_RECORD_EXAMPLES: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "Dana Whitfield, Director of Operations at Harbor Freight Lines in Denver, "
        "can be reached at dana.whitfield@harborfl.com.",
        {
            "name": "Dana Whitfield",
            "contact": "Dana Whitfield",
            "person": "Dana Whitfield",
            "full_name": "Dana Whitfield",
            "first_name": "Dana",
            "last_name": "Whitfield",
            "title": "Director of Operations",
            "job_title": "Director of Operations",
            "role": "Director of Operations",
            "position": "Director of Operations",
            "company": "Harbor Freight Lines",
            "organization": "Harbor Freight Lines",
            "employer": "Harbor Freight Lines",
            "city": "Denver",
            "location": "Denver",
            "email": "dana.whitfield@harborfl.com",
        },
    ),
    (
        "We spoke with Omar Haddad, the Lead Architect of Tessellate Systems, at the Boston expo.",
        {
            "name": "Omar Haddad",
            "contact": "Omar Haddad",
            "person": "Omar Haddad",
            "full_name": "Omar Haddad",
            "first_name": "Omar",
            "last_name": "Haddad",
            "title": "Lead Architect",
            "job_title": "Lead Architect",
            "role": "Lead Architect",
            "position": "Lead Architect",
            "company": "Tessellate Systems",
            "organization": "Tessellate Systems",
            "employer": "Tessellate Systems",
            "city": "Boston",
            "location": "Boston",
        },
    ),
)


# Summaries are taught apart from records: a record example's text leaked into summaries.
_SUMMARY_EXAMPLES: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "The team met to plan the spring launch. Ana will finish the landing page by "
        "March 3 and Ben will book the venue. The budget of $12,000 was approved.",
        {
            "summary": "Spring launch planned: landing page by March 3, venue booked, budget approved."
        },
    ),
    (
        "Our order arrived two days late and one of the three chairs was damaged. Support "
        "sent a replacement within a week, so we are satisfied overall.",
        {"summary": "A late, partly damaged order was put right quickly by support."},
    ),
)


@dataclass(frozen=True)
class ChoiceTask:
    """One enum property answered by scoring each choice after ``prompt``."""

    field: str
    prompt: str
    choices: tuple[str, ...]
    # The same prompt with a content-free item, for calibrating the choice prior.
    null_prompt: str


@dataclass(frozen=True)
class ReplyPlan:
    """How to answer one request: choices to score, then (maybe) JSON to generate."""

    schema: dict[str, Any] | None
    choice_tasks: list[ChoiceTask] = field(default_factory=list)
    gen_prompt: str | None = None
    json_mode: bool = False
    confidence_field: str | None = None
    # prose fields (a summary): given room, and ended at a sentence (see whole_sentences)
    prose_fields: tuple[str, ...] = ()


def item_text(hint: TaskHint) -> str:
    """The text the operation works on: the content field, else the item as JSON."""
    key = str(hint.params.get("content_field") or "content")
    value = hint.item.get(key)
    if isinstance(value, str):
        return value.strip()
    strings = [v for v in hint.item.values() if isinstance(v, str)]
    if len(strings) == 1:
        return strings[0].strip()
    return json.dumps(hint.item, ensure_ascii=False, default=str)


def _one_line(text: str) -> str:
    # A newline ends an example in the few-shot format, so the item must not contain one.
    return " ".join(text.split())


def _schema_of(request: ChatRequest) -> tuple[dict[str, Any] | None, bool]:
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema", spec) if isinstance(spec, Mapping) else None
        return (dict(schema) if isinstance(schema, Mapping) else None), True
    return None, fmt.get("type") == "json_object"


def _enum_fields(schema: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    props = schema.get("properties") or {}
    found: dict[str, tuple[str, ...]] = {}
    for name, prop in props.items():
        values = prop.get("enum") if isinstance(prop, Mapping) else None
        if values and all(isinstance(v, str) for v in values) and len(values) > 1:
            found[name] = tuple(values)
    return found


def _field_specs(hint: TaskHint) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for raw in hint.params.get("fields") or []:
        spec = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
        specs[str(spec.get("name"))] = spec
    return specs


def _examples(choices: tuple[str, ...]) -> list[tuple[str, str]]:
    """Worked examples covering every choice, in the caller's spelling; else none."""
    spelling = {c.casefold(): c for c in choices}
    for bank in _EXAMPLE_SETS:
        picked = [(text, spelling[lab]) for text, lab in bank if lab in spelling]
        if {lab for _, lab in picked} == set(choices):
            return picked
    return []


def _choice_prompt(header: list[str], key: str, choices: tuple[str, ...], text: str) -> str:
    lines = [*header, ""]
    for example, label in _examples(choices):
        lines += [f"Text: {example}", f"{key}: {label}", ""]
    lines += [f"Text: {_one_line(text)}", f"{key}:"]
    return "\n".join(lines)


def _example_json(schema: Mapping[str, Any], record: Mapping[str, str]) -> str | None:
    props = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    order = [*required, *(p for p in props if p not in required)]
    out: dict[str, Any] = {}
    for name in order:
        prop = props.get(name) or {}
        if name in record and prop.get("type", "string") == "string" and "enum" not in prop:
            out[name] = record[name]
        elif prop == _TEXT_OR_NULL:
            out[name] = record.get(name)
    return json.dumps(out, ensure_ascii=False) if out else None


def _generation_prompt(
    hint: TaskHint | None, request: ChatRequest, schema: Mapping[str, Any] | None
) -> str:
    if hint is None or hint.kind == "run":
        json_mode = schema is not None or _schema_of(request)[1]
        body = "\n\n".join(m.get("content", "") for m in request.messages if m.get("content"))
        return f"{body.strip()}\n\nJSON:" if json_mode else f"{body.strip()}\n\nAnswer:"
    lines: list[str] = []
    guide = hint.params.get("extraction_instructions") or hint.params.get("summary_instructions")
    if guide:
        lines += [_one_line(str(guide)), ""]
    for name, spec in _field_specs(hint).items():
        if spec.get("description"):
            lines.append(f"{name}: {_one_line(str(spec['description']))}")
    if lines and lines[-1]:
        lines.append("")
    bank = _SUMMARY_EXAMPLES if hint.kind == "summarize" else _RECORD_EXAMPLES
    for example, record in bank:
        shown = _example_json(schema, record) if schema is not None else None
        if shown:
            lines += [f"Text: {example}", f"JSON: {shown}", ""]
    lines += [f"Text: {_one_line(item_text(hint))}", "JSON:"]
    return "\n".join(lines)


def _choice_tasks(hint: TaskHint, schema: Mapping[str, Any]) -> list[ChoiceTask]:
    text = item_text(hint)
    specs = _field_specs(hint)
    tasks = []
    for name, choices in _enum_fields(schema).items():
        is_label = hint.kind == "label" and (
            hint.choices is None or set(hint.choices) == set(choices)
        )
        listed = ", ".join(choices)
        if is_label:
            header, key = [f"Label each text as one of: {listed}."], "Label"
        else:
            about = specs.get(name, {}).get("description")
            header = [_one_line(str(about))] if about else []
            header, key = [*header, f"Answer with one of: {listed}."], name
        prompt = _choice_prompt(header, key, choices, text)
        # "N/A" as a content-free item: its choice scores are the prompt's own bias.
        null = _choice_prompt(header, key, choices, "N/A")
        tasks.append(ChoiceTask(field=name, prompt=prompt, choices=choices, null_prompt=null))
    return tasks


def implied_schema(text: str) -> dict[str, Any] | None:
    """Keys a JSON-mode request names in its prompt, as a schema; None if it names none.

    Plain JSON mode gives a small model no keys to fill, and it answers ``{}``. Prompts
    usually name them: a template (``{"topic": ..., "urgent": true|false}``) or a list
    ("Extract contact, title, company and timeline.").
    """
    props: dict[str, Any] = {}
    for key, value in _TEMPLATE_KEY.findall(text):
        boolean = value.startswith(("true", "false"))
        props.setdefault(key, {"type": "boolean"} if boolean else _TEXT_OR_NULL)
    for listed in _EXTRACT_LIST.finditer(text) if not props else ():
        for word in re.split(r",|\band\b", listed.group(1)):
            name = "_".join(word.split()).strip("_").lower()
            if re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name) and name.count("_") < 3:
                props[name] = _TEXT_OR_NULL
        if props:
            break
    if not props:
        return None
    return {"type": "object", "properties": props, "required": list(props)}


def plan_reply(request: ChatRequest) -> ReplyPlan:
    """Decide what to score and what to generate for ``request``."""
    schema, json_mode = _schema_of(request)
    hint = request.hint
    if schema is None and json_mode:
        said = [m.get("content", "") for m in request.messages]
        if hint is not None:
            said.insert(0, str(hint.params.get("extraction_instructions") or ""))
        schema = implied_schema("\n".join(said))
    prose: tuple[str, ...] = ()
    if hint is not None and hint.kind == "summarize" and schema is not None:
        schema, prose = with_room(schema, "summary"), ("summary",)
    if schema is None or schema.get("type", "object") != "object" or hint is None:
        return ReplyPlan(
            schema=schema,
            gen_prompt=_generation_prompt(hint, request, schema),
            json_mode=json_mode or schema is not None,
            prose_fields=prose,
        )
    tasks = _choice_tasks(hint, schema)
    props = schema.get("properties") or {}
    scored = {t.field for t in tasks}
    confidence = None
    if (
        hint.kind == "label"
        and tasks
        and props.get("confidence", {}).get("type") in ("number", "integer")
    ):
        confidence = "confidence"
    rest = [p for p in (schema.get("required") or []) if p not in scored and p != confidence]
    gen_prompt = _generation_prompt(hint, request, schema) if rest else None
    return ReplyPlan(
        schema=schema,
        choice_tasks=tasks,
        gen_prompt=gen_prompt,
        json_mode=True,
        confidence_field=confidence,
    )
