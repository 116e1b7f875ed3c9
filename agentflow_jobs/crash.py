"""Deliberate crash points for the reliability tests.

``crash_point(name)`` kills the process on the spot (``os._exit(137)``, as ``kill -9``
would: no cleanup, no flushing) when ``AGENTFLOW_CRASH_AT`` names it — ``name`` for the
first hit, ``name:N`` for the Nth. Outside tests the variable is unset and this is a
dictionary lookup.
"""

from __future__ import annotations

import os
from collections import Counter

__all__ = ["crash_point"]

_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Exit at once with status 137 if ``AGENTFLOW_CRASH_AT`` asks for this point."""
    target = os.environ.get("AGENTFLOW_CRASH_AT")
    if not target:
        return
    wanted, _, nth = target.partition(":")
    if wanted != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os._exit(137)
