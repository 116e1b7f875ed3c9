"""Whatever a spec file holds, validation ends in a list of located problems or jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow_jobs.errors import SpecError
from agentflow_jobs.spec import load_specs

_VALID: dict[str, Any] = {
    "apiVersion": "agentflow-jobs/v1",
    "kind": "Job",
    "name": "fuzz",
    "operation": "run",
    "user_prompt_template": "Analyze {content}",
    "categories": ["a", "b"],
    "fields": [{"name": "x", "type": "categorical", "valid_values": ["a"]}],
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    "output_schema": {"type": "object"},
    "system_prompt_file": "prompt.txt",
    "input": {"path": "in.jsonl", "format": "jsonl"},
    "output": {"path": "out.jsonl", "errors_path": "errors.jsonl"},
    "execution": {"concurrency": 4, "max_failure_rate": 0.1},
}
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(["classify", "label", "extract", "enrich", "run", "../x", "/abs", "{0}", "${NOPE}", "$${x}"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _mutate(draw_keys: list[str], values: list[Any], drop: list[str]) -> dict[str, Any]:
    data = {k: v for k, v in _VALID.items() if k not in drop}
    for key, value in zip(draw_keys, values, strict=False):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(value, dict):
            data[key] = {**section, **value}
        else:
            data[key] = value
    return data


messages: set[str] = set()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.sampled_from([*_VALID, "extra", "input", "output"]), max_size=4),
    values=st.lists(_VALUES, max_size=4),
    drop=st.lists(st.sampled_from(list(_VALID)), max_size=3),
)
def test_mutated_specs_end_in_located_problems(
    tmp_path: Path, keys: list[str], values: list[Any], drop: list[str]
) -> None:
    spec = tmp_path / "fuzz.yaml"
    spec.write_text(yaml.safe_dump(_mutate(keys, values, drop)), encoding="utf-8")
    (tmp_path / "prompt.txt").write_text("You are terse.", encoding="utf-8")
    try:
        jobs = load_specs([spec], root=tmp_path)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert "Traceback" not in problem.message
            messages.add(problem.message)
    else:
        assert [job.name for job in jobs] == ["fuzz"]
