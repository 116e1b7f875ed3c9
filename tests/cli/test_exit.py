"""The console script ends its process at once (``exit_now``), skipping the interpreter's
teardown: what it printed still arrives whole, its exit code is the command's, and a
thread still running is waited for as a normal exit would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.handles import REPO_ROOT

CLI = [sys.executable, "-c", "from agentflow_jobs.cli import entrypoint; entrypoint()"]
SPEC = """apiVersion: agentflow-jobs/v1
kind: Job
name: job{n}
operation: classify
categories: [positive, negative]
input: {{path: ../data/items.jsonl}}
output: {{path: ../out/job{n}.jsonl}}
"""


def _workspace(root: Path, jobs: int) -> dict[str, str]:
    for name in (".git", "specs", "data"):
        (root / name).mkdir()
    (root / "data" / "items.jsonl").write_text(
        "".join(json.dumps({"content": f"item {i}"}) + "\n" for i in range(5)))
    for n in range(jobs):
        (root / "specs" / f"job{n}.yaml").write_text(SPEC.format(n=n))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLOW_", "OPENAI_"))}
    env.update(AGENTFLOW_LOCAL_MODEL="off", PYTHONPATH=str(REPO_ROOT))
    return env


def test_a_large_report_on_a_pipe_arrives_whole_with_the_commands_exit_code(tmp_path: Path) -> None:
    env = _workspace(tmp_path, jobs=300)  # a report of some 100 KB, beyond any pipe buffer
    done = subprocess.run([*CLI, "plan", "--json"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout)
    jobs = plans["jobs"] if isinstance(plans, dict) else plans
    assert len(done.stdout) > 65_536
    assert sorted(p["job"] for p in jobs) == sorted(f"job{n}" for n in range(300))


def test_an_invalid_spec_still_exits_3_naming_file_line_and_column(tmp_path: Path) -> None:
    env = _workspace(tmp_path, jobs=1)
    (tmp_path / "specs" / "job0.yaml").write_text(
        SPEC.format(n=0).replace("operation: classify", "operation: clasify"))
    done = subprocess.run([*CLI, "validate"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 3
    assert "job0.yaml:4:" in done.stdout + done.stderr


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    script = (
        "import threading, time\n"
        "from agentflow_jobs.cli import exit_now\n"
        "def late():\n"
        "    time.sleep(0.5)\n"
        f"    open({str(marker)!r}, 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "exit_now(7)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 7, done.stderr
    assert marker.read_text() == "done"
