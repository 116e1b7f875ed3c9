"""The offline model re-uses the KV cache of a shared prompt prefix (real model, counted tokens).

Choice scoring evaluates the few-shot prompt once for all choices, and the next item only
evaluates what differs from the previous prompt: counting the tokens llama.cpp actually
evaluates proves it, where a timing could not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.usefixtures("offline_model"),
]

FEW_SHOT = "".join(
    f"Review: {text}\nSentiment: {label}\n\n"
    for text, label in [
        ("I love it, works perfectly.", "positive"),
        ("Broke on day one, awful.", "negative"),
        ("Nice screen but the battery is weak.", "mixed"),
    ]
)
CHOICES = ["positive", "negative", "mixed"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from agentflow_jobs.providers import local

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("model-cache")))
        path: Path = local.packaged_model_path()
        yield local._Worker(path, n_ctx=2048, n_threads=1)


def _counting(worker: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    evaluated: list[int] = []
    real_eval = worker.llm.eval

    def eval_and_count(tokens: Any) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    monkeypatch.setattr(worker.llm, "eval", eval_and_count)
    return evaluated


def test_scoring_choices_evaluates_the_prompt_once(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = FEW_SHOT + "Review: The blender is great.\nSentiment:"
    prompt_tokens = len(worker.tokenize(prompt, bos=True))
    worker.llm.n_tokens = 0  # a cold cache
    evaluated = _counting(worker, monkeypatch)
    scores, used = worker.choice_logprobs(prompt, CHOICES)
    assert used == prompt_tokens and len(scores) == len(CHOICES)
    # once for the prompt, plus a few tokens per multi-token choice; never once per choice
    assert prompt_tokens <= sum(evaluated) < prompt_tokens + 4 * len(CHOICES)


def test_the_next_item_only_evaluates_what_differs(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker.choice_logprobs(FEW_SHOT + "Review: The blender is great.\nSentiment:", CHOICES)
    evaluated = _counting(worker, monkeypatch)
    second = FEW_SHOT + "Review: Terrible kettle, it leaks.\nSentiment:"
    worker.choice_logprobs(second, CHOICES)
    prefix_tokens = len(worker.tokenize(FEW_SHOT, bos=True))
    assert sum(evaluated) < len(worker.tokenize(second, bos=True)) - prefix_tokens // 2
