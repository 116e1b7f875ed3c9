"""Reading a job's output file back in tests, independently of the writers under test."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["output_rows"]


def output_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``.csv``, ``.json`` (a list) or JSON-lines output file."""
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".json":
        loaded = json.loads(path.read_text())
        assert isinstance(loaded, list)
        return loaded
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
