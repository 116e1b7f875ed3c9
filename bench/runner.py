"""The runner end to end: `agentflow-jobs apply` as a subprocess against the zero-latency fake.

Figures:
- ``apply_<n>``: items/s and peak RSS (``os.wait4`` rusage of that one child) for a
  first apply of n items (sync mode, classify) — 100k and 1M; memory must stay flat:
  ``rss_ratio`` = peak RSS at 1M / at 100k, target ≤ 1.25;
- ``plan_unchanged_s``: `plan` of the unchanged 1M-item job (fingerprints match, no read);
- ``plan_touched_s`` / ``reapply_touched_s``: after touching the input (same bytes: one
  SHA-256 of the file, no scan) — and ``reapply_unchanged_s`` after that;
- ``reapply_requests``: requests the fake saw during those re-applies (target 0);
- ``plan_rescan_s`` / ``apply_one_more_s``: after appending one row (every item hashed and
  looked up in the ledger; ``apply_one_more_requests`` should be 1).

``ok`` is the verdict: every apply exited 0, ``rss_ratio`` ≤ 1.25 and ``reapply_requests``
is 0; ``failures`` says which of them did not hold. ``python -m bench runner`` exits
non-zero when ``ok`` is false (``bench/__main__.py`` keeps the figures and fails any
benchmark whose ``ok`` is false).

``python -m bench.runner --quick`` (or AGENTFLOW_BENCH_QUICK=1) uses 5k / 50k items; it
exits 1 when ``ok`` is false.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.handles import REPO_ROOT, FakeProviderProcess

MAX_RSS_RATIO = 1.25
# what the console script runs (pyproject.toml)
CLI = [sys.executable, "-c", "from agentflow_jobs.launch import entrypoint; entrypoint()"]
WORDS = ("great", "terrible", "fine", "amazing", "awful", "ordinary")
SPEC = """apiVersion: agentflow-jobs/v1
kind: Job
name: bench
profile: bench
operation: classify
categories: [positive, negative, neutral]
input: {path: ../data/items.jsonl, id_field: rid}
output: {path: ../out/bench.jsonl}
mode: sync
execution: {concurrency: 256, chunk_size: 256, max_failure_rate: 0.01}
"""
PROFILES = """profiles:
  bench:
    engine: embedded
    store: {store}
    provider: {{type: openai, base_url: "{base_url}", api_key: bench, model: fake-model, concurrency: 256}}
"""


def _workspace(root: Path, count: int, fake: FakeProviderProcess) -> dict[str, str]:
    for name in (".git", "specs", "data"):
        (root / name).mkdir(exist_ok=True)
    with open(root / "data" / "items.jsonl", "w") as handle:
        for i in range(count):
            word = WORDS[i % len(WORDS)]
            handle.write(
                json.dumps({"rid": f"r{i}", "content": f"Review {i}: it was {word}."}) + "\n"
            )
    (root / "specs" / "bench.yaml").write_text(SPEC)
    (root / "profiles.yaml").write_text(
        PROFILES.format(store=root / "store.db", base_url=fake.base_url)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    env.update(
        AGENTFLOW_CONFIG=str(root / "profiles.yaml"),
        AGENTFLOW_LOCAL_MODEL="off",
        AGENTFLOW_LOG_FORMAT="json",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def _run(root: Path, env: dict[str, str], *args: str) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) and exit code of one CLI run."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, *args], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def _incremental_figures(
    root: Path, env: dict[str, str], fake: FakeProviderProcess, count: int
) -> dict[str, Any]:
    """Plan and re-apply an applied job: unchanged, touched, then with one row appended."""
    data = root / "data" / "items.jsonl"
    figures: dict[str, Any] = {"plan_unchanged_s": round(_run(root, env, "plan")[0], 2)}
    os.utime(data)
    figures["plan_touched_s"] = round(_run(root, env, "plan")[0], 2)
    fake.reset()
    codes: dict[str, int] = {}
    figures["reapply_touched_s"], _, codes["reapply_touched"] = _rounded(_run(root, env, "apply"))
    figures["reapply_unchanged_s"], _, codes["reapply_unchanged"] = _rounded(_run(root, env, "apply"))
    figures["reapply_requests"] = fake.count
    with open(data, "a") as handle:
        handle.write(json.dumps({"rid": f"r{count}", "content": "One more: it was great."}) + "\n")
    figures["plan_rescan_s"] = round(_run(root, env, "plan")[0], 2)
    figures["apply_one_more_s"], _, codes["apply_one_more"] = _rounded(_run(root, env, "apply"))
    figures["apply_one_more_requests"] = fake.count - figures["reapply_requests"]
    figures["reapply_exit_codes"] = codes
    return figures


def _rounded(run: tuple[float, float, int]) -> tuple[float, float, int]:
    seconds, rss, code = run
    return round(seconds, 2), rss, code


def _apply_figures(count: int, fake: FakeProviderProcess, *, full: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        root = Path(tmp)
        env = _workspace(root, count, fake)
        fake.reset()
        seconds, rss, code = _run(root, env, "apply")
        figures: dict[str, Any] = {
            "items": count,
            "exit_code": code,
            "seconds": round(seconds, 1),
            "items_per_s": round(count / seconds),
            "peak_rss_mib": round(rss, 1),
            "requests": fake.count,
        }
        if full:
            figures.update(_incremental_figures(root, env, fake, count))
        return figures


def verdict(figures: dict[str, Any]) -> list[str]:
    """What failed: an apply that did not exit 0, memory that grew, a re-apply that sent."""
    failures = []
    codes = {name: figures[name]["exit_code"] for name in figures if name.startswith("apply_")
             and isinstance(figures[name], dict) and "exit_code" in figures[name]}
    codes.update(figures.get("reapply_exit_codes", {}))
    failures += [f"{name} exited {code}" for name, code in codes.items() if code != 0]
    if not figures["rss_ratio"] <= MAX_RSS_RATIO:
        failures.append(f"rss_ratio {figures['rss_ratio']} > {MAX_RSS_RATIO}")
    if figures.get("reapply_requests") != 0:
        failures.append(f"reapply_requests {figures.get('reapply_requests')} != 0")
    return failures


def measure(quick: bool) -> dict[str, Any]:
    small, large = (5_000, 50_000) if quick else (100_000, 1_000_000)
    # raw front: the runner under test must be the bottleneck, not the fake's framework
    with FakeProviderProcess(latency_ms=0, front="raw") as fake:
        first = _apply_figures(small, fake, full=False)
        second = _apply_figures(large, fake, full=True)
    incremental = {
        k: second.pop(k) for k in list(second) if k.startswith(("plan_", "reapply_", "apply_one"))
    }
    figures: dict[str, Any] = {
        f"apply_{small}": first,
        f"apply_{large}": second,
        "rss_ratio": round(second["peak_rss_mib"] / first["peak_rss_mib"], 3),
        **incremental,
        "quick": quick,
    }
    figures["failures"] = verdict(figures)
    figures["ok"] = not figures["failures"]
    return figures


def run(quick: bool | None = None) -> dict[str, Any]:
    """The figures for ``python -m bench`` (``ok`` says whether the targets held)."""
    quick = bool(os.environ.get("AGENTFLOW_BENCH_QUICK")) if quick is None else quick
    return measure(quick)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv or bool(os.environ.get("AGENTFLOW_BENCH_QUICK"))
    figures = measure(quick)
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
