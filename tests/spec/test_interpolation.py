"""`${VAR}` interpolation: values, defaults, escapes, errors, and secret registration."""

from __future__ import annotations

import pytest

from agentflow_jobs.errors import InterpolationError
from agentflow_jobs.interpolate import expand, expand_tree
from agentflow_jobs.log import registered_secrets


def test_variables_defaults_and_escapes() -> None:
    env = {"MODEL": "gpt-4o-mini", "EMPTY": ""}
    result = expand("m=${MODEL} d=${NOPE:-fallback} e=${EMPTY:-x} lit=$${MODEL} $5", env)
    assert result.value == "m=gpt-4o-mini d=fallback e= lit=${MODEL} $5"
    assert result.variables == ("MODEL", "EMPTY")


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("a ${MISSING} b", 2, "environment variable `MISSING` is not set"),
        ("${1X}", 0, "`${1X}` is not a valid variable reference"),
        ("x ${OPEN", 2, "`${` is never closed"),
    ],
)
def test_errors_name_the_variable_and_offset(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        expand(text, {})
    assert caught.value.offset == offset
    assert fragment in str(caught.value)


def test_secret_values_are_registered_for_redaction() -> None:
    env = {"SERVICE_TOKEN": "tok-1234567890", "PLAIN": "value-interpolated-into-api-key"}
    expand("${SERVICE_TOKEN}", env)
    tree = expand_tree({"provider": {"api_key": "${PLAIN}", "model": "${PLAIN}"}}, env)
    assert tree == {"provider": {"api_key": env["PLAIN"], "model": env["PLAIN"]}}
    assert {"tok-1234567890", env["PLAIN"]} <= registered_secrets()
