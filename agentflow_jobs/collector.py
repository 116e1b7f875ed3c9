"""Imports with the garbage collector paused, then frozen: for start-up.

Importing the command line (click, structlog, httpx, ~80 ms) and then a command's
modules (``apply``'s: ~600, with pydantic's models) makes some 150,000 objects that live
as long as the process. Collecting among them as they appeared freed next to nothing and
took ~50 collections for the command line (6-10 ms) and ~60 for the command (25-30 ms,
one full pass over every older object included). ``launch`` imports the command line
and ``cli`` its command paused; what they made is then frozen, so no later collection
walks it either (``apply`` unfreezes everything when it ends).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the garbage collector paused, then freeze what it made."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
