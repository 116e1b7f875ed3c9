"""Logging: JSON lines on stderr when not a TTY, context bound once, secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from agentflow_jobs.log import configure_logging, redact, redact_event, register_secret


@pytest.fixture(autouse=True)
def _clear_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    captured = capsys.readouterr()
    assert captured.out == ""
    return [json.loads(line) for line in captured.err.splitlines()]


def test_logs_are_json_lines_on_stderr_with_bound_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="auto", level="info")
    structlog.contextvars.bind_contextvars(job="review-sentiment", run_id="run_1", batch_id="batch_9")
    log = structlog.get_logger()
    log.debug("hidden")
    log.info("chunk done", rows=64)
    [line] = _lines(capsys)
    assert line["event"] == "chunk done" and line["level"] == "info" and line["rows"] == 64
    assert (line["job"], line["run_id"], line["batch_id"]) == ("review-sentiment", "run_1", "batch_9")
    assert "timestamp" in line


def test_secret_named_keys_are_masked_at_any_depth(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")
    structlog.get_logger().warning(
        "request",
        api_key="sk-visible-by-name",
        headers={"Authorization": "Bearer abc", "accept": "json"},
        token=None,
    )
    [line] = _lines(capsys)
    assert line["api_key"] == "***"
    assert line["headers"] == {"Authorization": "***", "accept": "json"}
    assert "sk-visible-by-name" not in json.dumps(line)


def test_registered_and_environment_secrets_vanish_from_every_string(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-0123456789")
    configure_logging(fmt="json")
    register_secret("hunter2-secret-value")
    structlog.get_logger().error(
        "provider said: key sk-env-0123456789 is invalid",
        detail=["retry with hunter2-secret-value", {"url": "https://x/?k=sk-env-0123456789"}],
        claude="sk-ant-env-0123456789 rejected",
    )
    text = capsys.readouterr().err
    assert "sk-env-0123456789" not in text and "hunter2-secret-value" not in text
    assert "sk-ant-env-0123456789" not in text
    line = json.loads(text)
    assert line["event"] == "provider said: key *** is invalid"
    assert line["detail"] == ["retry with ***", {"url": "https://x/?k=***"}]


def test_console_format_is_readable_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="console", level="debug")
    structlog.get_logger().debug("hello", job="a", password="pw-123456")
    err = capsys.readouterr().err
    assert "hello" in err and "job=a" in err and "pw-123456" not in err


def test_redaction_is_a_plain_processor() -> None:
    event = {"event": "x", "secret_thing": "s", "nested": {"password": "p"}}
    assert redact_event(None, "info", event) == {"event": "x", "secret_thing": "***", "nested": {"password": "***"}}


def test_exception_tracebacks_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")
    register_secret("sk-in-a-traceback-42")
    try:
        raise ValueError("provider rejected sk-in-a-traceback-42")
    except ValueError:
        structlog.get_logger().exception("call failed")
    [line] = _lines(capsys)
    assert "ValueError: provider rejected ***" in line["exception"]


def test_redact_replaces_a_given_secret_and_the_registered_ones() -> None:
    register_secret("sk-registered-0123456789")
    text = "key sk-given-abcdef and sk-registered-0123456789, short ab"
    assert redact(text, "sk-given-abcdef") == "key *** and ***, short ab"
    assert redact(text, "ab") == "key sk-given-abcdef and ***, short ab"  # too short to be a key
    assert redact({"detail": ["sk-given-abcdef"]}, "sk-given-abcdef") == {"detail": ["***"]}
