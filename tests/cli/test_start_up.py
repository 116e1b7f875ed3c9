"""What `apply` loads at start-up, as a process: the price table (genai-prices, ~70 ms
of imports) only when a job sends something to a priced provider, since only then is a
price needed (the plan's cost for budgets, each answer's usage.cost_usd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fakes.handles import REPO_ROOT, FakeProviderProcess

SPEC = """apiVersion: agentflow-jobs/v1
kind: Job
name: start
profile: fake
operation: classify
categories: [positive, negative]
input: {path: ../data/items.jsonl, id_field: rid}
output: {path: ../out/start.jsonl}
mode: sync
"""
PROFILES = """profiles:
  fake:
    engine: embedded
    store: {store}
    provider: {{type: openai, base_url: "{base_url}", api_key: test, model: gpt-4o-mini}}
"""
# apply as the console script runs it, then say whether the price table was loaded
APPLY = (
    "import sys\nfrom agentflow_jobs.cli import main\ncode = main(['apply', '--json'])\n"
    "print(json.dumps({'code': code, 'prices': 'genai_prices' in sys.modules}), file=sys.stderr)"
)


def _apply(root: Path, env: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
    done = subprocess.run([sys.executable, "-c", "import json\n" + APPLY], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout), loaded


def _workspace(root: Path, base_url: str, items: list[dict[str, str]]) -> dict[str, str]:
    """A workspace with the job over ``items`` against ``base_url``; the environment."""
    for name in (".git", "specs", "data"):
        (root / name).mkdir()
    (root / "data" / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (root / "specs" / "start.yaml").write_text(SPEC)
    (root / "profiles.yaml").write_text(PROFILES.format(store=root / "store.db", base_url=base_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    env.update(AGENTFLOW_CONFIG=str(root / "profiles.yaml"), AGENTFLOW_LOCAL_MODEL="off",
               PYTHONPATH=str(REPO_ROOT))
    return env


def test_only_an_apply_that_sends_loads_the_price_table(
    tmp_path: Path, fake_provider_process: FakeProviderProcess
) -> None:
    items = [{"rid": f"r{i}", "content": f"it was {'great' if i % 2 else 'awful'}"} for i in range(6)]
    env = _workspace(tmp_path, fake_provider_process.base_url, items)

    report, loaded = _apply(tmp_path, env)
    (job,) = report["jobs"]  # type: ignore[attr-defined]
    assert loaded == {"code": 0, "prices": True}
    assert job["completed"] == 6 and job["sent"] >= 1
    requests = fake_provider_process.stats()["requests"]
    assert report["cost_usd"] is not None and report["cost_usd"] > 0  # priced: the table was read

    report, loaded = _apply(tmp_path, env)  # nothing left to send: no price is needed
    (job,) = report["jobs"]  # type: ignore[attr-defined]
    assert loaded == {"code": 0, "prices": False}
    assert (job["sent"], job["cached"]) == (0, 6)
    assert fake_provider_process.stats()["requests"] == requests


# a command's modules imported in a fresh process: collections during the import, then
# whether the collector is on and what the import made is frozen
IMPORT_COMMAND = """
import gc, json, click
from agentflow_jobs.cli import cli
pauses = []
gc.callbacks.append(lambda phase, info: phase == "start" and pauses.append(info["generation"]))
cli.get_command(click.Context(cli), "apply")
print(json.dumps({"pauses": len(pauses), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def test_a_command_is_imported_without_collecting_and_the_collector_stays_on() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", IMPORT_COMMAND], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    assert seen["pauses"] == 0  # ~600 modules: some 60 collections at Python's defaults
    assert seen["enabled"] is True
    assert seen["frozen"] > 50_000  # the modules' objects, out of every later collection


# what a module's import leaves in a fresh process: whether rich and pygments were
# imported, and whether structlog and httpx saw rich (they use it when they find it)
SEEN_RICH = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
loaded = {name: name in sys.modules for name in ("rich", "pygments")}
import httpx, structlog.dev
report = {"loaded": loaded, "structlog_rich": structlog.dev.rich is not None,
          "httpx_cli": "httpx._main" in sys.modules}
import rich.console, rich.table  # still importable afterwards
print(json.dumps(report))
"""


def _seen(*modules: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", SEEN_RICH, *modules], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    seen: dict[str, object] = json.loads(done.stdout)
    return seen


def test_the_command_line_starts_without_rich_and_the_sdk_leaves_it_be() -> None:
    # the CLI: structlog and httpx imported as if rich were absent (~45 ms of every start)
    assert _seen("agentflow_jobs.cli") == {
        "loaded": {"rich": False, "pygments": False}, "structlog_rich": False, "httpx_cli": False}
    # an application using the SDK finds both libraries as they are without us
    assert _seen("agentflow") == {
        "loaded": {"rich": True, "pygments": True}, "structlog_rich": True, "httpx_cli": True}
    # rich already in use when the CLI is imported (an application embedding it): kept
    assert _seen("rich", "agentflow_jobs.cli")["structlog_rich"] is True


def test_apply_prints_its_table_with_rich_imported_only_to_print_it(
    tmp_path: Path, fake_provider_process: FakeProviderProcess
) -> None:
    env = _workspace(tmp_path, fake_provider_process.base_url, [{"rid": "r1", "content": "it was great"}])
    # rich's modules as the first request leaves, whether the table's were loaded (while
    # the first requests were out) when it printed, then the exit code and the table
    probe = (
        "import sys, aiohttp\nfrom agentflow_jobs.cli import main, reports\n"
        "send = aiohttp.ClientSession._request\nseen = []\n"
        "async def request(self, *a, **k):\n"
        "    seen.append(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'pygments')))\n"
        "    return await send(self, *a, **k)\n"
        "aiohttp.ClientSession._request = request\n"
        "print_reports = reports.print_reports\n"
        "def printed(*a, **k):\n"
        "    print('table loaded before printing:', 'rich.table' in sys.modules, file=sys.stderr)\n"
        "    print_reports(*a, **k)\n"
        "reports.print_reports = printed\n"
        "code = main(['apply'])\nprint(code, seen[0], file=sys.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.stdout.strip() == "0 []"
    assert "┃ job   ┃ status" in done.stderr and "│ start │ applied │" in done.stderr
    assert "table loaded before printing: True" in done.stderr


# the console script's entry point (``ENTRY``) run as ``agentflow-jobs --version``: the
# collections while the command line was being imported, and the exit code
LAUNCH = """
import gc, json, os, sys
early = []
def seen(phase, info):
    cli = sys.modules.get("agentflow_jobs.cli")
    if phase == "start" and cli is not None and not hasattr(cli, "entrypoint"):
        early.append(info["generation"])
gc.callbacks.append(seen)
exit_now = os._exit
def report(code):
    print(json.dumps({"early": len(early), "enabled": gc.isenabled(), "code": code}), flush=True)
    exit_now(code)
os._exit = report
sys.argv = ["agentflow-jobs", "--version"]
module, name = "ENTRY".split(":")
getattr(__import__(module, fromlist=[name]), name)()
"""


def _launched(entry: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", LAUNCH.replace("ENTRY", entry)], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    seen: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_the_console_script_imports_the_command_line_without_collecting() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry = scripts["agentflow-jobs"]
    assert _launched(entry) == {"early": 0, "enabled": True, "code": 0}
    # what it saves: the command line imported as it comes
    early = _launched("agentflow_jobs.cli:entrypoint")["early"]
    assert isinstance(early, int) and early > 10
