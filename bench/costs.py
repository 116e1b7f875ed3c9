"""How good `plan`'s cost estimate is: its tokens against what the model really used.

``examples``: every job of ``specs/examples`` is planned (``plan --json``: estimated
input and output tokens) and then applied on the offline model (nothing configured:
the built-in ``local`` profile); the actual tokens are the usage the ledger recorded.
Per job and in all: estimated and actual input and output tokens and the relative
error ``(estimate - actual) / actual``. The offline model builds its own prompts and
counts with its own tokenizer, so this measures the heuristic against a real one.
A model with a price table would be priced from these tokens: the cost error is the
tokens' error weighted by the input and output prices.

``heuristic_vs_tokenizer``: the same rendered prompts plan estimates (what an
OpenAI-compatible provider is sent), counted by the byte heuristic and by a real
tokenizer (the offline model's, Gemma 3): the error of the heuristic alone.

``plan_items_per_s``: `plan` of a 20k-item classify job that has never run (every item
rendered, keyed, looked up and its prompt estimated) — the estimate must keep plan fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from agentflow_jobs.cli import main

REPO = Path(__file__).resolve().parent.parent
PLAN_ITEMS = 20_000


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


def _actual_tokens(state: Path) -> dict[str, dict[str, int]]:
    """Per job: prompt and completion tokens the ledger recorded (re-asks included)."""
    found: dict[str, dict[str, int]] = {}
    with contextlib.closing(sqlite3.connect(state)) as db:
        for job, row in db.execute("SELECT job, row FROM ledger"):
            usage = json.loads(row).get("usage") or {}
            tally = found.setdefault(job, {"input": 0, "output": 0, "items": 0})
            tally["input"] += int(usage.get("prompt_tokens") or 0)
            tally["output"] += int(usage.get("completion_tokens") or 0)
            tally["items"] += 1
    return found


def _error(estimate: int, actual: int) -> float | None:
    return round((estimate - actual) / actual, 3) if actual else None


def _compare(plan: dict[str, Any], actual: dict[str, dict[str, int]]) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    totals = {"est_input": 0, "input": 0, "est_output": 0, "output": 0}
    for job in plan["jobs"]:
        used = actual.get(job["job"], {"input": 0, "output": 0, "items": 0})
        figures = {
            "items": job["to_send"],
            "est_input_tokens": job["est_input_tokens"],
            "input_tokens": used["input"],
            "input_error": _error(job["est_input_tokens"], used["input"]),
            "est_output_tokens": job["est_output_tokens"],
            "output_tokens": used["output"],
            "output_error": _error(job["est_output_tokens"], used["output"]),
        }
        jobs[job["job"]] = figures
        totals["est_input"] += job["est_input_tokens"]
        totals["input"] += used["input"]
        totals["est_output"] += job["est_output_tokens"]
        totals["output"] += used["output"]
    return {
        "jobs": jobs,
        "input_error": _error(totals["est_input"], totals["input"]),
        "output_error": _error(totals["est_output"], totals["output"]),
        "total_error": _error(
            totals["est_input"] + totals["est_output"], totals["input"] + totals["output"]
        ),
    }


def _examples(root: Path) -> dict[str, Any]:
    shutil.copytree(REPO / "specs" / "examples", root / "specs" / "examples")
    shutil.copytree(REPO / "schemas", root / "schemas")
    (root / ".git").mkdir()
    code, text = _cli("plan", "specs/examples", "--json")
    if code != 0:
        return {"ok": False, "failures": [f"plan exited {code}"]}
    plan = json.loads(text)
    started = time.perf_counter()
    code, _ = _cli("apply", "specs/examples")
    figures = _compare(plan, _actual_tokens(root / "specs" / ".agentflow" / "state.db"))
    figures["apply_seconds"] = round(time.perf_counter() - started, 1)
    figures["apply_exit_code"] = code
    figures["heuristic_vs_tokenizer"] = _heuristic_vs_tokenizer(root)
    return figures


def _heuristic_vs_tokenizer(root: Path) -> dict[str, Any]:
    import llama_cpp

    from agentflow_jobs.pricing import estimate_prompt_tokens
    from agentflow_jobs.providers.local import packaged_model_path
    from agentflow_jobs.runner.items import job_items
    from agentflow_jobs.runner.job import Job
    from agentflow_jobs.spec.load import load_specs

    vocab = llama_cpp.Llama(model_path=str(packaged_model_path()), vocab_only=True, verbose=False)
    heuristic = counted = 0
    for spec in load_specs([root / "specs" / "examples"]):
        job = Job.from_spec(spec)
        for rendered in job_items(job):
            messages = job.operation.messages(rendered.item or {}) or []
            heuristic += estimate_prompt_tokens(messages)
            # the heuristic's own framing (4 a message, 3 for the reply) around counted text
            counted += 3 + sum(
                4 + len(vocab.tokenize(m["content"].encode(), add_bos=False)) for m in messages
            )
    return {"heuristic": heuristic, "tokenizer": counted, "error": _error(heuristic, counted)}


def _plan_speed(root: Path) -> float:
    (root / "specs").mkdir(parents=True)
    (root / ".git").mkdir()
    with (root / "items.jsonl").open("w") as handle:
        for i in range(PLAN_ITEMS):
            handle.write(json.dumps({"id": i, "content": f"review {i}: the product is fine"}) + "\n")
    (root / "specs" / "big.yaml").write_text(
        "apiVersion: agentflow-jobs/v1\nkind: Job\nname: big\nmodel: gpt-4o-mini\n"
        "operation: classify\ncategories: [positive, negative]\n"
        "input: {path: ../items.jsonl}\noutput: {path: ../out/big.jsonl}\n"
    )
    started = time.perf_counter()
    code, _ = _cli("plan", "specs", "--json")
    seconds = time.perf_counter() - started
    return round(PLAN_ITEMS / seconds) if code == 0 else 0.0


@contextlib.contextmanager
def _place(env: dict[str, str]) -> Any:
    """A temporary working directory and environment (the offline model, its own store)."""
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in os.environ if n.startswith(("AGENTFLOW_", "OPENAI_"))]:
            del os.environ[name]
        os.environ.update({"AGENTFLOW_STORE": f"{tmp}/store.db", **env})
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)


def run() -> dict[str, Any]:
    with _place({}) as root:
        examples = _examples(root)
    with _place({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) as root:
        speed = _plan_speed(root)
    return {
        "examples": examples,
        "plan_items_per_s": speed,
        "ok": examples.get("apply_exit_code") == 0 and speed > 0,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
