"""`make bench`: run every registered benchmark and merge its figures into bench/results.json.

Register a benchmark by appending its module name to BENCHMARKS. A module exposes
``run() -> dict`` (JSON-serialisable figures); they land under one top-level key, the
module name without ``bench.``. A module that is not there yet is skipped, so the list
can name work in progress. ``python -m bench engine transport`` runs a selection.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = [
    "bench.transport",
    "bench.engine",
    "bench.runner",
    "bench.ratelimit",
    "bench.costs",
    "bench.e2e",
    "bench.destinations",
    "bench.state",
    "bench.anthropic",
]
RESULTS = Path(__file__).resolve().parent / "results.json"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(results: dict[str, Any]) -> None:
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, RESULTS)


def _selected(argv: list[str]) -> list[str]:
    if not argv:
        return list(BENCHMARKS)
    return [name if name.startswith("bench.") else f"bench.{name}" for name in argv]


def main(argv: list[str]) -> int:
    results = _load()
    failed = False
    for name in _selected(argv):
        key = name.removeprefix("bench.")
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"{key}: skipped (no module {name} yet)", file=sys.stderr)
            continue
        started = time.perf_counter()
        print(f"{key}: running", file=sys.stderr, flush=True)
        try:
            figures = module.run()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{key}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
            continue
        figures["_seconds"] = round(time.perf_counter() - started, 1)
        results[key] = figures
        _save(results)
        print(json.dumps({key: figures}, indent=2))
        if figures.get("ok") is False:  # it ran, and says a target did not hold
            print(f"{key}: targets missed: {figures.get('failures', '')}", file=sys.stderr)
            failed = True
    print(f"figures in {RESULTS}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
