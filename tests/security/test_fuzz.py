"""A short fuzzing run (~10 s) of the three parsers that read untrusted text; `make chaos`
runs the same properties with thousands of examples."""

from __future__ import annotations

from tests.security import fuzzing


def test_spec_loader_ends_in_jobs_or_located_problems() -> None:
    assert fuzzing.fuzz_spec_loader(300) == 300


def test_templates_parse_or_fail_located_and_never_evaluate() -> None:
    assert fuzzing.fuzz_templates(600) == 600


def test_input_readers_yield_items_or_located_item_errors() -> None:
    assert fuzzing.fuzz_readers(500) == 500
