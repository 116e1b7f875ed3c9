from __future__ import annotations

import math
from typing import Any

import pytest

from agentflow_jobs.chat import ChatReply, TokenLogprob
from agentflow_jobs.errors import InvalidOutput, InvalidRequest, OperationInputError
from agentflow_jobs.operations import get_operation
from agentflow_jobs.operations.label import DEFAULT_CONFIDENCE
from agentflow_jobs.wire import CompletionRequest
from tests.operations.helpers import reply, request

CATS = ["positive", "negative", "mixed"]
LABEL = get_operation("classify")


def labels(**extra: Any) -> CompletionRequest:
    return request("classify", categories=CATS, **extra)


def tok(token: str, p: float, **top: float) -> TokenLogprob:
    return TokenLogprob(token, math.log(p), {k: math.log(v) for k, v in top.items()})


def test_build_asks_for_the_categories_as_an_enum_with_logprobs() -> None:
    chat = LABEL.build(labels(), {"content": "Great stuff"})
    assert chat.messages[-1] == {"role": "user", "content": "Great stuff"}
    assert '"positive", "negative", "mixed"' in chat.messages[0]["content"]
    fmt = chat.response_format
    assert fmt is not None and fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert fmt["json_schema"]["strict"] is True
    assert schema["properties"]["label"]["enum"] == CATS
    assert schema["required"] == ["label", "confidence"]
    assert schema["additionalProperties"] is False
    assert chat.logprobs is True and chat.top_logprobs == 5
    assert chat.hint is not None and chat.hint.kind == "label"
    assert chat.hint.choices == tuple(CATS)
    assert chat.hint.item == {"content": "Great stuff"}
    assert LABEL.response_schema(labels()) == schema


def test_content_field_is_configurable() -> None:
    chat = LABEL.build(labels(content_field="text"), {"text": "hello"})
    assert chat.messages[-1]["content"] == "hello"


def test_label_is_normalised_to_the_declared_spelling() -> None:
    out = LABEL.parse(labels(), {}, reply({"label": "  NEGATIVE ", "confidence": 0.8}))
    assert out == {"label": "negative", "confidence": 0.8}


def test_a_label_in_another_unicode_form_is_the_declared_spelling() -> None:
    request_ = request("classify", categories=["caf\u00e9", "th\u00e9"])  # precomposed é
    out = LABEL.parse(request_, {}, reply({"label": "CAFE\u0301", "confidence": 0.7}))  # e + accent
    assert out == {"label": "caf\u00e9", "confidence": 0.7}


@pytest.mark.parametrize(
    ("categories", "words"),
    [
        (["Yes", "yes"], "categories `Yes` and `yes` differ only in case, spacing or Unicode form"),
        (["a b", "a  b"], "categories `a b` and `a  b` differ only in case, spacing or Unicode form"),
        (["caf\u00e9", "cafe\u0301"], "categories `caf\u00e9` and `cafe\u0301` differ only in case, spacing or Unicode form"),
        (["No", "Maybe", " maybe "], "categories `Maybe` and ` maybe ` differ only"),
    ],
)
def test_categories_differing_only_in_case_or_spacing_are_refused(
    categories: list[str], words: str
) -> None:
    req = request("classify", categories=categories)
    with pytest.raises(InvalidRequest) as caught:
        LABEL.build(req, {"content": "x"})
    assert words in caught.value.message


def test_the_exact_spelling_wins_over_the_folded_match() -> None:
    req = request("classify", categories=["Yes", "No"])
    assert LABEL.parse(req, {}, reply({"label": "Yes", "confidence": 0.9}))["label"] == "Yes"
    assert LABEL.parse(req, {}, reply({"label": " yes", "confidence": 0.9}))["label"] == "Yes"


def test_a_label_outside_the_categories_is_invalid_and_named() -> None:
    with pytest.raises(InvalidOutput) as caught:
        LABEL.parse(labels(), {}, reply({"label": "neutral", "confidence": 0.8}))
    assert "'neutral' is not one of the categories" in caught.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json at all", "not valid JSON"),
        ('{"confidence": 0.3}', "no 'label'"),
        ('{"label": 3}', "must be a string"),
        ("[1, 2]", "not an object"),
    ],
)
def test_malformed_replies_are_invalid(text: str, words: str) -> None:
    with pytest.raises(InvalidOutput) as caught:
        LABEL.parse(labels(), {}, reply(text))
    assert words in caught.value.message


def test_a_truncated_reply_says_so() -> None:
    with pytest.raises(InvalidOutput) as caught:
        LABEL.parse(labels(), {}, reply('{"label": "posi', finish_reason="length"))
    assert "cut off" in caught.value.message


def test_fenced_json_and_a_bare_category_are_accepted() -> None:
    fenced = '```json\n{"label": "mixed", "confidence": 0.4}\n```'
    assert LABEL.parse(labels(), {}, reply(fenced))["label"] == "mixed"
    assert LABEL.parse(labels(), {}, reply('"Positive".'))["label"] == "positive"


@pytest.mark.parametrize(
    ("given", "confidence"),
    [
        (0.8, 0.8),
        (1, 1.0),
        (0, 0.0),
        ("0.8", 0.8),
        (" 0.35 ", 0.35),
        ("80%", 0.8),
        ("150%", 1.0),
        (80, 0.8),
        (7, 0.07),
        (1.5, 1.0),
        ("80", 0.8),
        (100, 1.0),
        (250, 1.0),
        (10**400, 1.0),
        (-3, 0.0),
        ("-0.2", 0.0),
    ],
)
def test_the_models_own_confidence_is_read_as_a_fraction(given: Any, confidence: float) -> None:
    out = LABEL.parse(labels(), {}, reply({"label": "mixed", "confidence": given}))
    assert out == {"label": "mixed", "confidence": pytest.approx(confidence)}


@pytest.mark.parametrize("given", ["high", "", None, True, [0.8], "NaN"])
def test_a_confidence_that_is_not_a_number_gets_the_default(given: Any) -> None:
    out = LABEL.parse(labels(), {}, reply({"label": "mixed", "confidence": given}))
    assert out["confidence"] == DEFAULT_CONFIDENCE == 0.5
    assert LABEL.parse(labels(), {}, reply({"label": "mixed"}))["confidence"] == 0.5


def test_confidence_from_provider_choice_scores() -> None:
    scored = reply(
        {"label": "positive", "confidence": 0.99},
        choice_probs={"positive": 0.3, "negative": 0.1, "mixed": 0.1},
    )
    assert LABEL.parse(labels(), {}, scored)["confidence"] == pytest.approx(0.6)


def label_tokens(*value_tokens: TokenLogprob, confidence: str = "0.99") -> list[TokenLogprob]:
    head = [tok('{"', 1.0), tok("label", 1.0), tok('":"', 1.0)]
    tail = [
        tok('","', 1.0),
        tok("confidence", 1.0),
        tok('":', 1.0),
        tok(confidence, 1.0),
        tok("}", 1.0),
    ]
    return [*head, *value_tokens, *tail]


def logprob_reply(tokens: list[TokenLogprob]) -> ChatReply:
    return reply("".join(t.token for t in tokens), logprobs=tokens)


def test_confidence_from_logprobs_normalises_over_category_tokens() -> None:
    tokens = label_tokens(
        tok("pos", 0.6, pos=0.6, neg=0.2, mix=0.1, The=0.1),
        tok("itive", 0.99, itive=0.99, ition=0.01),
    )
    out = LABEL.parse(labels(), {}, logprob_reply(tokens))
    # 0.6 of the 0.9 that went to category tokens; "The" is not a category; the
    # model's own 0.99 is ignored when logprobs are there
    assert out == {"label": "positive", "confidence": pytest.approx(0.6 / 0.9)}


def test_a_token_shared_by_two_categories_defers_to_the_next() -> None:
    req = request("classify", categories=["neutral", "negative"])
    tokens = label_tokens(
        tok("ne", 0.9, ne=0.9, pos=0.1),
        tok("utral", 0.7, utral=0.7, gative=0.3),
    )
    out = LABEL.parse(req, {}, logprob_reply(tokens))
    assert out["confidence"] == pytest.approx(0.7)


def test_a_token_carrying_the_opening_quote_is_read_too() -> None:
    tokens = [
        tok('{"label":', 1.0),
        tok(' "positive', 0.8, **{' "positive': 0.8, ' "negative': 0.15, " null": 0.05}),
        tok('"}', 1.0),
    ]
    out = LABEL.parse(labels(), {}, logprob_reply(tokens))
    assert out["confidence"] == pytest.approx(0.8 / 0.95)


def test_a_token_without_alternatives_uses_its_own_probability() -> None:
    tokens = label_tokens(tok("mixed", 0.42))
    out = LABEL.parse(labels(), {}, logprob_reply(tokens))
    assert out["confidence"] == pytest.approx(0.42)


def test_a_bare_category_reply_takes_its_confidence_from_logprobs() -> None:
    tokens = [
        tok("pos", 0.6, pos=0.6, neg=0.2, mix=0.1, The=0.1),
        tok("itive", 0.99, itive=0.99, ition=0.01),
        tok(".", 0.9),
    ]
    out = LABEL.parse(labels(), {}, logprob_reply(tokens))
    assert out == {"label": "positive", "confidence": pytest.approx(0.6 / 0.9)}


def test_a_bare_reply_token_running_past_the_name_still_counts() -> None:
    tokens = [
        tok('"', 1.0),
        tok('Mixed".', 0.7, **{'Mixed".': 0.7, "Negative": 0.2, "I": 0.1}),
    ]
    out = LABEL.parse(labels(), {}, logprob_reply(tokens))
    assert out == {"label": "mixed", "confidence": pytest.approx(0.7 / 0.9)}


def test_unreadable_logprobs_fall_back_to_the_estimate() -> None:
    tokens = [tok("junk", 0.5)]
    text = '{"label": "mixed", "confidence": 0.25}'
    out = LABEL.parse(labels(), {}, reply(text, logprobs=tokens))
    assert out["confidence"] == 0.25


@pytest.mark.parametrize("content", ["", "   \n\t"])
def test_empty_content_is_an_input_error(content: str) -> None:
    with pytest.raises(OperationInputError) as caught:
        LABEL.build(labels(), {"content": content})
    assert caught.value.code == "empty_content"


def test_missing_content_is_an_input_error() -> None:
    with pytest.raises(OperationInputError) as caught:
        LABEL.build(labels(), {"body": "x"})
    assert caught.value.code == "missing_field"
    assert "'content'" in caught.value.message


def test_an_oversized_item_is_an_input_error() -> None:
    from agentflow_jobs.operations import MAX_ITEM_CHARS

    with pytest.raises(OperationInputError) as caught:
        LABEL.build(labels(), {"content": "x" * (MAX_ITEM_CHARS + 1)})
    assert caught.value.code == "item_too_large"
    assert "100,000" in caught.value.message


def test_retry_messages_carry_the_bad_reply_and_the_problem() -> None:
    req = labels()
    chat = LABEL.build(req, {"content": "meh"})
    bad = reply({"label": "neutral", "confidence": 0.5})
    messages = LABEL.retry_messages(req, chat, bad, InvalidOutput("label 'neutral' is wrong"))
    assert messages[:2] == chat.messages
    assert messages[2] == {"role": "assistant", "content": bad.text}
    assert messages[3]["role"] == "user"
    assert "label 'neutral' is wrong" in messages[3]["content"]
    assert '"positive", "negative", "mixed"' in messages[3]["content"]
