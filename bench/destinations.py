"""Destinations: peak RSS of a Parquet job against the same job on JSONL.

The same n-item classify job (sync mode, the zero-latency fake provider) is applied
twice as a subprocess, each in its own workspace: once reading and writing JSONL, once
reading and writing Parquet (input written in row groups of 10k rows). Figures per
format: seconds, items/s, peak RSS (``os.wait4`` rusage of that one child); and
``rss_ratio`` = Parquet's peak RSS / JSONL's, target ≤ 1.25 (issue 18: the Parquet
reader streams row-group batches and the writer holds one row group at a time);
``pyarrow_import_mib`` is what importing pyarrow.parquet alone adds to a bare interpreter
(its shared libraries), ``parquet_extra_mib`` the whole gap between the two jobs.

Linux counts a child's peak RSS from at least its parent's RSS at the fork (the
high-water mark survives exec), so this process keeps pyarrow out of itself until the
applies are measured: the conversion to Parquet runs in a child of its own.

n is 1M; ``python -m bench.destinations --quick`` (or AGENTFLOW_BENCH_QUICK=1) uses 50k.
``ok`` is false when an apply did not exit 0 or the ratio is above the target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.runner import SPEC, _run, _workspace
from tests.fakes.handles import FakeProviderProcess

MAX_RSS_RATIO = 1.25
_GROUP = 10_000


# the JSONL input as Parquet, one row group at a time, in a child process: see _apply
_CONVERT = """
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
writer, rows = None, []
def flush():
    global writer, rows
    if rows:
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(sys.argv[2], table.schema)
        writer.write_table(table)
        rows = []
for line in open(sys.argv[1]):
    rows.append(json.loads(line))
    if len(rows) == GROUP:
        flush()
flush()
writer.close()
""".replace("GROUP", str(_GROUP))


def _to_parquet(source: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-c", _CONVERT, str(source), str(target)], check=True)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


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
        rows = _parquet_rows(out) if fmt == "parquet" else _lines(out)
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


def _import_rss_mib() -> float:
    """What importing pyarrow.parquet adds to a bare interpreter's peak RSS (VmHWM, the
    process's own high-water mark, read before and after the import in a child)."""
    code = (
        "import re\n"
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
        "before = hwm()\n"
        "import pyarrow.parquet\n"
        "print(hwm() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return round(int(out.stdout) / 1024, 1)


def measure(quick: bool) -> dict[str, Any]:
    count = 50_000 if quick else 1_000_000
    import_mib = _import_rss_mib()
    with FakeProviderProcess(latency_ms=0, front="raw") as fake:
        jsonl = _apply("jsonl", count, fake)
        parquet = _apply("parquet", count, fake)
    figures: dict[str, Any] = {
        "jsonl": jsonl,
        "parquet": parquet,
        "rss_ratio": round(parquet["peak_rss_mib"] / jsonl["peak_rss_mib"], 3),
        # what the gap is made of: the pyarrow libraries themselves, loaded once
        "pyarrow_import_mib": import_mib,
        "parquet_extra_mib": round(parquet["peak_rss_mib"] - jsonl["peak_rss_mib"], 1),
        # the ratio once the libraries' fixed cost is set aside: the working memory
        "rss_ratio_beyond_pyarrow": round(
            (parquet["peak_rss_mib"] - import_mib) / jsonl["peak_rss_mib"], 3
        ),
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
