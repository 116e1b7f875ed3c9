from __future__ import annotations

import pytest

import agentflow_jobs.operations as operations
from agentflow_jobs.operations import get_operation


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("label", "label"),
        ("classify", "label"),
        ("extract", "extract"),
        ("summarize", "summarize"),
        ("enrich", "enrich"),
        ("run", "run"),
        ("feedback_analysis", "run"),
    ],
)
def test_every_name_maps_to_its_operation(name: str, kind: str) -> None:
    assert get_operation(name).kind == kind


def test_public_names_exist() -> None:
    assert all(hasattr(operations, name) for name in operations.__all__)
