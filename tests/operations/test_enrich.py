from __future__ import annotations

from typing import Any

import pytest

from agentflow_jobs.errors import InvalidOutput, InvalidRequest
from agentflow_jobs.operations import get_operation
from agentflow_jobs.wire import CompletionRequest
from tests.operations.helpers import reply, request

ENRICH = get_operation("enrich")
FIELDS: list[dict[str, Any]] = [
    {"name": "segment", "type": "categorical", "valid_values": ["enterprise", "mid-market", "smb"]},
    {"name": "employees", "type": "integer", "description": "Head count"},
    {"name": "arr", "type": "number"},
    {"name": "public", "type": "boolean"},
    {"name": "hq", "type": "string"},
    {"name": "tags", "type": "list"},
]
GOOD = {
    "segment": "Enterprise",
    "employees": 500.0,
    "arr": 12.5,
    "public": False,
    "hq": "Berlin",
    "tags": ["saas", "b2b"],
}


def enrich(**extra: Any) -> CompletionRequest:
    return request("enrich", fields=FIELDS, **extra)


def test_schema_types_every_field() -> None:
    chat = ENRICH.build(enrich(), {"content": "Enterprise SaaS, 500 employees"})
    assert chat.response_format is not None
    schema = chat.response_format["json_schema"]["schema"]
    props = schema["properties"]
    assert props["segment"] == {"type": "string", "enum": ["enterprise", "mid-market", "smb"]}
    assert props["employees"] == {"type": "integer", "description": "Head count"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["required"] == [f["name"] for f in FIELDS]
    assert "Head count" in chat.messages[0]["content"]


def test_values_are_typed_as_declared() -> None:
    out = ENRICH.parse(enrich(), {}, reply({**GOOD, "extra": 1}))
    assert out == {**GOOD, "segment": "enterprise", "employees": 500}
    assert isinstance(out["employees"], int)


def test_lenient_spellings_are_coerced() -> None:
    data = {**GOOD, "employees": "1,200", "arr": "3.5", "public": "yes", "tags": "solo"}
    out = ENRICH.parse(enrich(), {}, reply(data))
    assert (out["employees"], out["arr"], out["public"], out["tags"]) == (1200, 3.5, True, ["solo"])


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("segment", "startup", "one of enterprise, mid-market, smb"),
        ("employees", "abc", "an integer"),
        ("employees", 3.5, "an integer"),
        ("employees", True, "an integer"),
        ("arr", None, "a number"),
        ("public", "maybe", "true or false"),
        ("hq", {"city": "Berlin"}, "a string"),
        ("tags", [["nested"]], "a list of strings"),
    ],
)
def test_mistyped_values_are_invalid(key: str, value: Any, words: str) -> None:
    with pytest.raises(InvalidOutput) as caught:
        ENRICH.parse(enrich(), {}, reply({**GOOD, key: value}))
    assert f"field {key!r} must be {words}" in caught.value.message


def test_a_missing_field_is_invalid() -> None:
    data = {k: v for k, v in GOOD.items() if k != "hq"}
    with pytest.raises(InvalidOutput, match="no value for field 'hq'"):
        ENRICH.parse(enrich(), {}, reply(data))


def test_include_context_adds_a_justification_key_per_field() -> None:
    req = enrich(include_context=True)
    schema = ENRICH.response_schema(req)
    assert schema is not None
    assert schema["properties"]["segment_context"] == {"type": "string"}
    assert "segment_context" in schema["required"]
    notes = {f"{k}_context": f"because {k}" for k in GOOD}
    out = ENRICH.parse(req, {}, reply({**GOOD, **notes}))
    assert out["segment_context"] == "because segment"
    assert list(out)[:2] == ["segment", "segment_context"]


def test_include_context_requires_the_justifications() -> None:
    with pytest.raises(InvalidOutput, match="'segment_context'"):
        ENRICH.parse(enrich(include_context=True), {}, reply(GOOD))


def test_a_context_key_colliding_with_a_field_is_a_request_error() -> None:
    req = request(
        "enrich",
        fields=[{"name": "size"}, {"name": "size_context"}],
        include_context=True,
    )
    with pytest.raises(InvalidRequest, match="collides"):
        ENRICH.build(req, {"content": "x"})


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (["A", "a"], "valid_values `A` and `a` differ only in case, spacing or Unicode form"),
        (["x", "small business", "Small  Business"], "`small business` and `Small  Business`"),
    ],
)
def test_valid_values_differing_only_in_case_or_spacing_are_refused(
    values: list[str], words: str
) -> None:
    req = request("enrich", fields=[{"name": "tier", "type": "categorical", "valid_values": values}])
    with pytest.raises(InvalidRequest) as caught:
        ENRICH.build(req, {"content": "x"})
    assert "field 'tier'" in caught.value.message
    assert words in caught.value.message


def test_a_categorical_value_matches_exactly_before_folding() -> None:
    req = request(
        "enrich", fields=[{"name": "tier", "type": "categorical", "valid_values": ["Gold", "silver"]}]
    )
    assert ENRICH.parse(req, {}, reply({"tier": "Gold"})) == {"tier": "Gold"}
    assert ENRICH.parse(req, {}, reply({"tier": " SILVER "})) == {"tier": "silver"}


def test_a_number_beyond_float_range_is_invalid_not_an_internal_error() -> None:
    huge = '{"arr": 1' + "0" * 400 + "}"
    req = request("enrich", fields=[{"name": "arr", "type": "number"}])
    with pytest.raises(InvalidOutput) as caught:
        ENRICH.parse(req, {}, reply(huge))
    assert "field 'arr' must be a number" in caught.value.message
    assert "not a finite number" in caught.value.message


@pytest.mark.parametrize("kind", ["number", "integer"])
@pytest.mark.parametrize("value", ["1e400", "NaN", "-inf"])
def test_non_finite_strings_are_invalid(kind: str, value: str) -> None:
    req = request("enrich", fields=[{"name": "n", "type": kind}])
    with pytest.raises(InvalidOutput, match="not a finite number"):
        ENRICH.parse(req, {}, reply({"n": value}))


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("number", "1,234", 1234.0),
        ("number", "12,345,678.5", 12345678.5),
        ("number", "-1,000", -1000.0),
        ("integer", "1,234", 1234),
        ("integer", "12345678901234567891", 12345678901234567891),
        ("integer", "3.0", 3),
        ("integer", 12345678901234567891, 12345678901234567891),
    ],
)
def test_thousands_separators_and_long_integers_are_read_exactly(
    kind: str, value: Any, expected: Any
) -> None:
    req = request("enrich", fields=[{"name": "n", "type": kind}])
    out = ENRICH.parse(req, {}, reply({"n": value}))
    assert out == {"n": expected}
    assert type(out["n"]) is type(expected)


@pytest.mark.parametrize("kind", ["number", "integer"])
@pytest.mark.parametrize("value", ["1,5", "0,25", "1,2345"])
def test_a_decimal_comma_is_invalid_rather_than_a_tenfold_value(kind: str, value: str) -> None:
    req = request("enrich", fields=[{"name": "n", "type": kind}])
    with pytest.raises(InvalidOutput) as caught:
        ENRICH.parse(req, {}, reply({"n": value}))
    assert f'got "{value}" (ambiguous decimal comma' in caught.value.message


@pytest.mark.parametrize("value", ["1,23,456", "12,34.5", "a,b"])
def test_misplaced_commas_are_invalid(value: str) -> None:
    req = request("enrich", fields=[{"name": "n", "type": "number"}])
    with pytest.raises(InvalidOutput, match="field 'n' must be a number"):
        ENRICH.parse(req, {}, reply({"n": value}))


@pytest.mark.parametrize("kind", ["string", "integer", "list"])
def test_valid_values_on_a_field_that_is_not_categorical_is_a_request_error(kind: str) -> None:
    req = request("enrich", fields=[{"name": "hq", "type": kind, "valid_values": ["Berlin"]}])
    with pytest.raises(InvalidRequest) as caught:
        ENRICH.build(req, {"content": "x"})
    assert caught.value.message == (
        f"field 'hq' has valid_values but its type is {kind!r}; "
        "valid_values only apply to categorical fields"
    )
