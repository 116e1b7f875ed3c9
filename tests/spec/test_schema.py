"""The generated JSON Schema: complete help text for editors, and usable by jsonschema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]

from agentflow_jobs.spec import job_spec_schema


def _properties(schema: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        path = f"{where}.{name}" if where else name
        yield path, prop
        yield from _properties(prop, path)
        if isinstance(prop.get("items"), dict):
            yield from _properties(prop["items"], f"{path}[]")


def test_schema_declares_its_dialect_and_id() -> None:
    schema = job_spec_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("job-spec.schema.json")
    assert schema["title"]
    Draft202012Validator.check_schema(schema)


def test_every_property_has_a_description_and_no_references() -> None:
    schema = job_spec_schema()
    props = dict(_properties(schema))
    assert {"input.content_field", "fields[].valid_values", "execution.max_failure_rate"} <= set(props)
    assert [p for p, prop in props.items() if not prop.get("description")] == []
    assert "$ref" not in str(schema) and "$defs" not in schema


def test_enums_let_editors_complete_values() -> None:
    props = dict(_properties(job_spec_schema()))
    assert props["operation"]["enum"] == ["classify", "label", "extract", "summarize", "enrich", "run"]
    assert props["input.format"]["enum"] == ["jsonl", "csv", "json", "txt", "parquet"]
    assert props["output.format"]["enum"] == ["jsonl", "csv", "json", "parquet"]
    assert props["mode"]["enum"] == ["sync", "batch", "auto"]
    assert "categorical" in props["fields[].type"]["enum"]
    assert job_spec_schema()["additionalProperties"] is False
