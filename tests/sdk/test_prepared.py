"""sdk.prepared: an operation prepared once, checking items as the engine would, unsent."""

from __future__ import annotations

from agentflow_jobs.sdk.prepared import prepare_operation
from agentflow_jobs.wire import CompletionRequest


def test_an_empty_item_is_refused_naming_the_callers_field() -> None:
    prepared = prepare_operation("classify", content_field="text", categories=["a", "b"])
    assert prepared.kind == "label"
    refused = prepared.refusal({"content": ""})
    assert refused is not None and refused.code == "empty_content"
    assert "'text'" in refused.message
    assert prepared.refusal({"content": "fine"}) is None


def test_template_fields_are_named_in_order_and_checked() -> None:
    prepared = prepare_operation(
        "feedback", "m", system_prompt="answer in {lang}", user_prompt_template="{content} ({lang})"
    )
    assert (prepared.kind, prepared.fields["operation_name"]) == ("run", "feedback")
    assert prepared.template_fields == ("content", "lang")
    refused = prepared.refusal({"content": "a"})
    assert refused is not None and refused.code == "missing_field"
    assert prepared.refusal({"content": "a", "lang": "en"}) is None


def test_hash_fields_are_what_the_request_would_hash() -> None:
    prepared = prepare_operation("summarize", "m", summary_instructions="short", operation_name=None)
    request = CompletionRequest(operation="summarize", items=[], model="m", summary_instructions="short")
    assert prepared.hash_fields == request.fields_for_hash()
    assert prepared.fields == {"summary_instructions": "short"}


def test_a_request_the_engine_refuses_whole_still_prepares_without_item_checks() -> None:
    prepared = prepare_operation("run", user_prompt_template="{broken")
    assert prepared.template_fields == ()
    assert prepared.refusal({"content": "x"}) is None
