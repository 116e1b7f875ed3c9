"""Destinations: peak RSS of a Parquet job against the same job on JSONL.

The same n-item classify job (sync mode, the zero-latency fake provider) is applied
twice as a subprocess, each in its own workspace: once reading and writing JSONL, once
reading and writing Parquet (input written in row groups of 10k rows). Figures per
format: seconds, items/s, peak RSS (``os.wait4`` rusage of that one child); and
``rss_ratio`` = Parquet's peak RSS / JSONL's, target ≤ 1.25 (issue 18: the Parquet
reader streams row-group batches and the writer holds one row group at a time).

n is 1M; ``python -m bench.destinations --quick`` (or AGENTFLOW_BENCH_QUICK=1) uses 50k.
``ok`` is false when an apply did not exit 0 or the ratio is above the target.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.runner import SPEC, _run, _workspace
from tests.fakes.handles import FakeProviderProcess

MAX_RSS_RATIO = 1.25
_GROUP = 10_000


def _to_parquet(source: Path, target: Path) -> None:
    """The JSONL input as Parquet, one row group at a time (the bench stays flat too)."""
    writer: pq.ParquetWriter | None = None
    rows: list[dict[str, Any]] = []
    with open(source) as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == _GROUP:
                writer = _write_group(writer, rows, target)
                rows = []
    writer = _write_group(writer, rows, target)
    if writer is not None:
        writer.close()


def _write_group(
    writer: pq.ParquetWriter | None, rows: list[dict[str, Any]], target: Path
) -> pq.ParquetWriter | None:
    if not rows:
        return writer
    table = pa.Table.from_pylist(rows)
    writer = writer or pq.ParquetWriter(target, table.schema)
    writer.write_table(table)
    return writer


def _apply(fmt: str, count: int, fake: FakeProviderProcess) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-dest-{fmt}-") as tmp:
        root = Path(tmp)
        env = _workspace(root, count, fake)
        if fmt == "parquet":
            _to_parquet(root / "data" / "items.jsonl", root / "data" / "items.parquet")
            (root / "data" / "items.jsonl").unlink()
            spec = SPEC.replace("items.jsonl", "items.parquet").replace("bench.jsonl", "bench.parquet")
            (root / "specs" / "bench.yaml").write_text(spec)
        fake.reset()
        seconds, rss, code = _run(root, env, "apply")
        out = root / "out" / f"bench.{fmt}"
        rows = pq.ParquetFile(out).metadata.num_rows if fmt == "parquet" else _lines(out)
        return {
            "items": count,
            "exit_code": code,
            "rows_written": rows,
            "seconds": round(seconds, 1),
            "items_per_s": round(count / seconds),
            "peak_rss_mib": round(rss, 1),
        }


def _lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def measure(quick: bool) -> dict[str, Any]:
    count = 50_000 if quick else 1_000_000
    with FakeProviderProcess(latency_ms=0, front="raw") as fake:
        jsonl = _apply("jsonl", count, fake)
        parquet = _apply("parquet", count, fake)
    figures: dict[str, Any] = {
        "jsonl": jsonl,
        "parquet": parquet,
        "rss_ratio": round(parquet["peak_rss_mib"] / jsonl["peak_rss_mib"], 3),
        "quick": quick,
    }
    failures = [f"{name} exited {f['exit_code']}" for name, f in (("jsonl", jsonl), ("parquet", parquet))
                if f["exit_code"] != 0 or f["rows_written"] != count]
    if not figures["rss_ratio"] <= MAX_RSS_RATIO:
        failures.append(f"rss_ratio {figures['rss_ratio']} > {MAX_RSS_RATIO}")
    figures["failures"] = failures
    figures["ok"] = not failures
    return figures


def run(quick: bool | None = None) -> dict[str, Any]:
    """The figures for ``python -m bench`` (``ok`` says whether the target held)."""
    quick = bool(os.environ.get("AGENTFLOW_BENCH_QUICK")) if quick is None else quick
    return measure(quick)


def main(argv: list[str]) -> int:
    figures = measure("--quick" in argv or bool(os.environ.get("AGENTFLOW_BENCH_QUICK")))
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
