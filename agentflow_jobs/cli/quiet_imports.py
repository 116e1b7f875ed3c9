"""What the command line imports before anything else: structlog and httpx, without
rich.

Both look for rich (and pygments) when they are imported and use them if installed:
structlog for tracebacks drawn frame by frame with their local variables, httpx for its
own command-line client. The command line uses neither: its tracebacks reach the
renderer as text, secrets redacted (``agentflow_jobs.log``), and it never runs httpx's
client. Yet those modules were ~45 ms of every start, a tenth of what ``apply`` spends
before its first request. So these two are imported here with rich and pygments hidden;
both stay importable afterwards, and the reports import rich's console and tables when
they print. Only the command line does this: an application using the SDK finds
structlog and httpx as it would without us.
"""

from __future__ import annotations

import sys

__all__: list[str] = []

_HIDDEN = ("rich", "pygments")


def _import_without_rich() -> None:
    if any(name in sys.modules for name in ("structlog", "httpx", *_HIDDEN)):
        return  # too late to save anything, or rich is already in use
    for name in _HIDDEN:
        sys.modules[name] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import httpx  # noqa: F401
        import structlog  # noqa: F401
    finally:
        for name in _HIDDEN:
            del sys.modules[name]


_import_without_rich()
