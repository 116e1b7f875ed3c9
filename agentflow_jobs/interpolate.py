"""``${VAR}`` / ``${VAR:-default}`` interpolation of environment variables.

The bottom layer shared by job specs and profiles. ``$${`` is a literal ``${``. Every
expansion reports the variables it used, so callers can treat values that came from the
environment as secrets: a variable whose name looks secret (``OPENAI_API_KEY``), or one
interpolated into a secret-named key (``api_key: ${X}``), is registered for redaction.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentflow_jobs.errors import InterpolationError
from agentflow_jobs.log import is_secret_key, register_secret

__all__ = ["Expansion", "expand", "expand_tree"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# $${ escape | ${NAME} | ${NAME:-default} | any other ${...} (malformed)
_TOKEN = re.compile(r"\$\$\{|\$\{(?:(" + _NAME + r")(?::-([^}]*))?\}|([^}]*)\}?)")


@dataclass(frozen=True)
class Expansion:
    """An expanded string and the environment variables it used."""

    value: str
    variables: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.variables)


def expand(text: str, env: Mapping[str, str] | None = None) -> Expansion:
    """Expand ``${VAR}`` references in ``text``; raise on an unset variable."""
    if "$" not in text:
        return Expansion(text)
    environ = os.environ if env is None else env
    used: list[str] = []
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        out.append(_replacement(match, environ, used))
    out.append(text[pos:])
    value = "".join(out)
    for name in used:
        if is_secret_key(name):
            register_secret(environ.get(name))
    return Expansion(value, tuple(dict.fromkeys(used)))


def _replacement(match: re.Match[str], environ: Mapping[str, str], used: list[str]) -> str:
    if match.group(0) == "$${":
        return "${"
    name, default, bad = match.group(1), match.group(2), match.group(3)
    if name is None:
        closed = match.group(0).endswith("}")
        shown = match.group(0) if closed else "${"
        reason = "is not a valid variable reference" if closed else "is never closed with `}`"
        raise InterpolationError(
            f"`{shown}` {reason}; write ${{NAME}} or ${{NAME:-default}} (`$${{` for a literal `${{`)",
            variable=bad or None,
            offset=match.start(),
        )
    if default is not None and "${" in default:
        # `${X:-${Y}}` would stop at the first `}`; refuse it rather than guess
        raise InterpolationError(
            f"`{match.group(0)}}}`: a default cannot contain another ${{...}} reference",
            variable=name,
            offset=match.start(),
        )
    if name in environ:
        used.append(name)
        return environ[name]
    if default is not None:
        return default
    raise InterpolationError(
        f"environment variable `{name}` is not set (write ${{{name}:-default}} to give a default)",
        variable=name,
        offset=match.start(),
    )


def expand_tree(value: Any, env: Mapping[str, str] | None = None, *, key: object = None) -> Any:
    """Expand every string in a nested structure of dicts and lists.

    A value expanded into a secret-named key (``api_key``, ``token``, ...) is registered
    for redaction.
    """
    if isinstance(value, str):
        expansion = expand(value, env)
        if expansion.changed and is_secret_key(key):
            register_secret(expansion.value)
        return expansion.value
    if isinstance(value, Mapping):
        return {k: expand_tree(v, env, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_tree(v, env, key=key) for v in value]
    return value
