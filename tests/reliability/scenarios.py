"""Fault scenarios shared by the fast reliability tests (small) and `make chaos` (large).

Each returns a JSON-ready dict of figures with an ``ok`` verdict, so the benchmark can
report it and a test can assert it. The fake provider is the separate process.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fakes.handles import FakeProvider, FakeProviderProcess
from tests.reliability.harness import Outcome, Project, count_lost_and_duplicated, review_rows

# the in-process fake (fast tests) or the separate process (chaos): the same surface
Fake = FakeProvider | FakeProviderProcess
# what an item that finally failed against a faulty provider may say
STORM_CODES = frozenset({"rate_limited", "provider_error", "timeout", "invalid_output"})
# The background storm hits only rows saying "the product is" (every review_rows row), so
# the targeted rows below get their own fault and nothing else (a random stall on top of a
# targeted 500 would turn its code into "timeout").
BACKGROUND = "the product is"
STORM_RULES: tuple[dict[str, Any], ...] = (
    {"status": 429, "retry_after": 0.2, "rate": 0.05, "seed": 1},
    {"status": 500, "rate": 0.04, "seed": 2},
    {"status": 503, "rate": 0.02, "seed": 3},
    {"fault": "reset", "rate": 0.03, "seed": 4},
    {"latency_ms": 2500, "rate": 0.02, "seed": 5},  # a stall past the 1 s timeout
    {"fault": "hang", "rate": 0.01, "seed": 6},
    {"fault": "truncated", "rate": 0.03, "seed": 7},
    {"fault": "malformed", "rate": 0.03, "seed": 8},
    {"fault": "non_json", "rate": 0.02, "seed": 9},
)
# Rows whose content carries <<name#k>> get exactly this fault on every attempt (or only the
# first one, "once-*"), and must end with exactly this code (None: completed after retry).
TARGETED: tuple[tuple[str, dict[str, Any], str | None], ...] = (
    ("429", {"status": 429, "retry_after": 0.05}, "rate_limited"),
    ("500", {"status": 500}, "provider_error"),
    ("503", {"status": 503}, "provider_error"),
    ("400", {"status": 400}, "bad_request"),
    ("reset", {"fault": "reset"}, "provider_error"),
    ("malformed", {"fault": "malformed"}, "provider_error"),
    ("missing_choices", {"fault": "missing_choices"}, "provider_error"),
    ("stall", {"latency_ms": 2500}, "timeout"),
    ("hang", {"fault": "hang"}, "timeout"),
    ("truncated", {"fault": "truncated"}, "invalid_output"),
    ("non_json", {"fault": "non_json"}, "invalid_output"),
    ("wrong_label", {"fault": "wrong_label"}, "invalid_output"),
    ("once-429", {"status": 429, "retry_after": 0.05, "times": 1}, None),
    ("once-500", {"status": 500, "times": 1}, None),
    ("once-reset", {"fault": "reset", "times": 1}, None),
    ("once-stall", {"latency_ms": 2500, "times": 1}, None),
    ("once-malformed", {"fault": "malformed", "times": 1}, None),
    ("once-truncated", {"fault": "truncated", "times": 1}, None),
)
TIMEOUT_S = 1.0
MAX_ATTEMPTS = 3


def traceback_free(outcome: Outcome) -> bool:
    return "Traceback (most recent call last)" not in outcome.stderr + outcome.stdout


def provider_block(fake: Fake, **extra: Any) -> dict[str, Any]:
    """A provider block for ``fake``, of the API it speaks (OpenAI's, or Anthropic's)."""
    kind = str(getattr(fake, "kind", "openai"))
    model = "claude-haiku-4-5" if kind == "anthropic" else "fake-model"
    return {"type": kind, "base_url": fake.base_url, "api_key": "sk-reliability",
            "model": model, "concurrency": 32, **extra}


def targeted_rows(copies: int = 2) -> list[dict[str, Any]]:
    """``copies`` rows per targeted fault, ids ``t-<name>-<k>``."""
    return [{"rid": f"t-{name}-{k}", "content": f"review t{k}: the target is great <<{name}#{k}>>"}
            for name, _, _ in TARGETED for k in range(copies)]


def _script_storm(fake: Fake, copies: int) -> None:
    fake.reset()
    for name, rule, _ in TARGETED:  # one rule per row: "times" counts that row's attempts
        for k in range(copies):
            fake.script(**rule, match=f"<<{name}#{k}>>")
    for rule in STORM_RULES:
        fake.script(**rule, match=BACKGROUND)


def _targeted_verdicts(ids: list[str], errors: list[dict[str, Any]],
                       copies: int) -> dict[str, Any]:
    """Per targeted fault: the code each of its rows ended with ("completed" or the code)."""
    ended = {str(e["id"]): str(e["code"]) for e in errors}
    ended.update({row_id: "completed" for row_id in ids if row_id.startswith("t-")})
    out: dict[str, Any] = {}
    for name, _, code in TARGETED:
        want = code or "completed"
        got = [ended.get(f"t-{name}-{k}", "missing") for k in range(copies)]
        out[name] = {"expected": want, "got": got, "ok": all(g == want for g in got)}
    return out


def provider_storm(base: Path, fake: Fake, *, items: int, copies: int = 2) -> dict[str, Any]:
    """Every item ends completed or failed with a fitting code; nothing waits forever.

    Background rows take random faults and may end with any of STORM_CODES; targeted rows
    take one known fault and must end with exactly its code (or complete, when the fault
    hit only their first attempt).
    """
    _script_storm(fake, copies)
    project = Project(base / "storm", provider_block(fake, timeout=TIMEOUT_S,
                                                       max_attempts=MAX_ATTEMPTS))
    targeted = targeted_rows(copies)
    project.write_input(review_rows(items) + targeted)
    project.write_spec(execution={"max_failure_rate": 1.0, "concurrency": 32})
    total = items + len(targeted)
    # generous: every attempt of every item stalling, spread over the concurrency
    bound = 60 + total * MAX_ATTEMPTS * (TIMEOUT_S + 1) / 32
    outcome = project.run(timeout=bound)
    stats = fake.stats()
    fake.reset()
    ids = project.output_ids()
    errors = project.error_rows()
    expected = [f"r{i}" for i in range(items)] + [row["rid"] for row in targeted]
    lost, duplicated = count_lost_and_duplicated(ids + [str(e["id"]) for e in errors], expected)
    background = Counter(str(e["code"]) for e in errors if not str(e["id"]).startswith("t-"))
    verdicts = _targeted_verdicts(ids, errors, copies)
    figures: dict[str, Any] = {
        "items": total, "exit_code": outcome.code, "seconds": round(outcome.seconds, 1),
        "bound_s": round(bound, 1), "completed": len(ids), "failed": len(errors),
        "error_codes": dict(Counter(str(e["code"]) for e in errors)),
        "background_error_codes": dict(background), "lost": lost, "duplicated": duplicated,
        "targeted": verdicts,
        "targeted_ok": sum(1 for v in verdicts.values() if v["ok"]),
        "targeted_total": len(verdicts),
        "provider": {"requests": stats["requests"], "by_status": stats["by_status"]},
        "rules": list(STORM_RULES),
    }
    figures["ok"] = (outcome.code in (0, 1) and lost == 0 and duplicated == 0
                     and set(background) <= STORM_CODES
                     and all(v["ok"] for v in verdicts.values()) and traceback_free(outcome))
    if not figures["ok"]:
        figures["stderr_tail"] = outcome.stderr.strip()[-600:]
    return figures


def _completed_project(base: Path, fake: Fake, name: str, items: int) -> Project:
    project = Project(base / name, provider_block(fake))
    project.write_input(review_rows(items))
    project.write_spec()
    outcome = project.run()
    if outcome.code != 0:
        raise RuntimeError(f"setup apply failed ({outcome.code}): {outcome.stderr[-600:]}")
    return project


def _drop_sidecars(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()


def torn_state(base: Path, fake: Fake, *, items: int, how: str) -> dict[str, Any]:
    """A truncated or garbage state file: exit 5 naming the state, or a clean recovery."""
    project = _completed_project(base, fake, f"state-{how}", items)
    before = project.output_path.read_bytes()
    _drop_sidecars(project.state)
    data = project.state.read_bytes()
    if how == "truncated":
        project.state.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        project.state.write_bytes(b"this is not a database\n" * 64)
    else:  # header kept, pages zeroed: a file that opens and then fails
        project.state.write_bytes(data[:100] + b"\0" * (len(data) - 100))
    outcome = project.run()
    output_kept = project.output_path.read_bytes() == before
    clear = outcome.code == 5 and "state" in outcome.stderr.lower()
    recovered = outcome.code == 0 and project.output_ids() == [f"r{i}" for i in range(items)]
    return {"how": how, "exit_code": outcome.code, "clear_error": clear, "recovered": recovered,
            "output_kept": output_kept, "stderr_tail": outcome.stderr.strip()[-300:],
            "ok": (clear or recovered) and output_kept and traceback_free(outcome)}


def torn_input(base: Path, fake: Fake, *, items: int) -> dict[str, Any]:
    """A half-written last input line is one located per-item error, the rest is answered."""
    project = Project(base / "torn-input", provider_block(fake))
    project.write_input(review_rows(items), tail='{"rid": "r-torn", "content": "half wri')
    project.write_spec(execution={"max_failure_rate": 0.5})
    outcome = project.run()
    errors = project.error_rows()
    ids = project.output_ids()
    torn = [e for e in errors if e.get("line") == items + 1]
    return {"exit_code": outcome.code, "completed": len(ids), "errors": errors[:3],
            "ok": (outcome.code == 0 and ids == [f"r{i}" for i in range(items)]
                   and len(errors) == 1 and len(torn) == 1 and traceback_free(outcome))}


@contextlib.contextmanager
def small_disk(base: Path, size_kb: int) -> Iterator[tuple[Path, str]]:
    """A tmpfs of ``size_kb`` when mounting works (root), else a plain folder."""
    folder = base / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield folder, "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def full_disk(base: Path, fake: Fake, *, items: int) -> dict[str, Any]:
    """No space for the state/output: a clear error, then a full recovery with room again."""
    size_kb = 48 + items * 64 // 1024
    with small_disk(base, size_kb) as (folder, how):
        project = Project(folder / "ws", provider_block(fake))
        project.write_input(review_rows(items))
        project.write_spec()
        limit = size_kb * 1024 if how == "rlimit" else None
        start = fake.count
        full = project.run(fsize_limit=limit)
        partial = project.output_ids()
        # move the workspace to a roomy disk, as a user freeing space would
        roomy = base / "full-disk-after"
        shutil.copytree(project.root, roomy)
    moved = Project(roomy, provider_block(fake))
    recovered = moved.run()
    ids = moved.output_ids()
    lost, duplicated = count_lost_and_duplicated(ids, [f"r{i}" for i in range(items)])
    return {"how": how, "full_exit_code": full.code, "full_stderr_tail": full.stderr.strip()[-300:],
            "partial_output_rows": len(partial), "recovered_exit_code": recovered.code,
            "lost": lost, "duplicated": duplicated, "requests": fake.count - start,
            "ok": (full.code != 0 and not partial and traceback_free(full)
                   and (how != "tmpfs" or "not a state file" not in full.stderr)
                   and recovered.code == 0 and lost == 0 and duplicated == 0)}


def torn_files(base: Path, fake: Fake, *, items: int) -> dict[str, Any]:
    fake.reset()
    results: dict[str, Any] = {
        "state_truncated": torn_state(base, fake, items=items, how="truncated"),
        "state_garbage": torn_state(base, fake, items=items, how="garbage"),
        "state_zeroed": torn_state(base, fake, items=items, how="zeroed"),
        "input_half_line": torn_input(base, fake, items=items),
        "full_disk": full_disk(base, fake, items=items),
    }
    results["ok"] = all(r["ok"] for r in results.values())
    return results


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
