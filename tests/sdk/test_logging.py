"""What an application that uses the SDK sees in its own output when something is logged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# a frame holding the key as a local, then a logged exception: what an unexpected error
# inside the engine looks like (the transport's headers are locals too)
SCRIPT = textwrap.dedent("""
    import structlog
    from agentflow import AgentFlow

    client = AgentFlow(base_url="http://127.0.0.1:9", api_key="sk-sdk-canary-0123456789")

    def send():
        headers = {"authorization": "Bearer sk-sdk-canary-0123456789"}
        raise ValueError("the request failed")

    try:
        send()
    except ValueError:
        structlog.get_logger("agentflow_jobs").exception("item failed unexpectedly")
    structlog.get_logger("agentflow_jobs").info("routine detail")
    client.close()
""")


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def test_the_sdk_logs_to_stderr_without_secrets_or_locals_when_the_app_set_nothing_up() -> None:
    done = _run(SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # an application's stdout is its own
    assert "item failed unexpectedly" in done.stderr and "ValueError: the request failed" in done.stderr
    assert "sk-sdk-canary" not in done.stderr
    assert "routine detail" not in done.stderr  # warnings and up only


def test_an_application_that_configured_structlog_keeps_its_setup() -> None:
    done = _run("import structlog\nstructlog.configure(processors=[structlog.processors.KeyValueRenderer()])\n"
                + SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "event='routine detail'" in done.stdout  # its own renderer, level and stream
