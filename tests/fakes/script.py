"""The fake provider's script: rules, what they do to one request, and the counters.

Every ``script(...)`` call appends a Rule; for each request all rules that apply
(``match`` substring in the messages, ``model`` the request's model, ``times`` left,
``rate`` roll) are consumed and merged into Effects: the first status/fault wins, the
largest latency wins. FakeState
also holds the settings (rpm, rpm_window_s, require_api_key) and the counters, and is
only ever touched from the server's event loop.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from tests.fakes import replies

FAULTS = frozenset(
    {
        "malformed",  # 200 with a body that is not JSON
        "non_json",  # 200, valid envelope, content is prose instead of JSON
        "missing_choices",  # 200, valid JSON without "choices"
        "empty",  # 200, empty content
        "wrong_label",  # enum values replaced by a value the schema does not allow
        "truncated",  # finish_reason "length", content cut in half
        "refusal",  # content null, message.refusal says why, finish_reason "stop"
        "content_filter",  # content null, finish_reason "content_filter"
        "hang",  # never answers until reset/close
        "reset",  # the connection is reset instead of answered
        "reject_json_schema",  # 400 for response_format json_schema, like older servers
        "reject_json_schema_500",  # 500 naming response_format, like llama-cpp-python's server
        "reject_logprobs",  # 400 for a request with logprobs, like reasoning models
    }
)


def _asks_json_schema(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


# The rejections hit only requests that use the feature the server lacks.
_USES_FEATURE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "reject_json_schema": _asks_json_schema,
    "reject_json_schema_500": _asks_json_schema,
    "reject_logprobs": lambda body: bool(body.get("logprobs")),
}
# rate_headers: with an rpm, every reply says x-ratelimit-{limit,remaining,reset}-requests
SETTINGS = ("rpm", "rpm_window_s", "require_api_key", "rate_headers")
KEPT_REQUESTS = 2000
KEPT_GAPS = 200_000  # client gaps measured, the latest (a benchmark's 10,000 many times over)


class Connection(Protocol):
    """What the state needs of a hung connection: a way to drop it on reset."""

    def abort(self, *, reset: bool = False) -> None: ...


@dataclass
class Rule:
    """One scripted behaviour; with no ``times``/``rate``/``match`` it applies to all."""

    latency_ms: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    fault: str | None = None
    logprobs: bool | None = None
    times: int | None = None
    rate: float | None = None
    seed: int = 0
    match: str | None = None
    model: str | None = None  # only this model's requests: support differs per model
    body: str | None = None
    headers: dict[str, str] | None = None  # added to the scripted reply (e.g. x-ratelimit-*)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {sorted(FAULTS)}")
        self._rng = random.Random(self.seed)

    def applies(self, text: str, body: dict[str, Any]) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.match is not None and self.match not in text:
            return False
        if self.model is not None and body.get("model") != self.model:
            return False
        uses = _USES_FEATURE.get(self.fault or "")
        if uses is not None and not uses(body):
            return False
        if self.rate is not None and self._rng.random() >= self.rate:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class Effects:
    """The merged rules for one request."""

    latency_ms: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    fault: str | None = None
    logprobs: bool = False
    body: str | None = None
    headers: dict[str, str] | None = None

    def merge(self, rule: Rule) -> None:
        self.latency_ms = max(self.latency_ms, rule.latency_ms)
        if self.status is None and self.fault is None and (rule.status or rule.fault):
            self.status, self.fault, self.body = rule.status, rule.fault, rule.body
            self.headers = rule.headers
            self.retry_after, self.retry_after_ms = rule.retry_after, rule.retry_after_ms
        if rule.logprobs is not None:
            self.logprobs = rule.logprobs


_RULE_FIELDS = {f.name for f in fields(Rule) if not f.name.startswith("_")}


class FakeState:
    """Rules, counters and recent requests; touched only from the server's loop."""

    def __init__(self, *, latency_ms: float = 0.0, rpm: int | None = None) -> None:
        self.base_latency_ms = latency_ms
        self.base_rpm = rpm
        self.hung: set[Connection] = set()
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        self.generation += 1
        self.rules: list[Rule] = [Rule(latency_ms=self.base_latency_ms)] if self.base_latency_ms else []
        self.rpm: int | None = self.base_rpm
        self.rpm_window_s = 60.0
        self.require_api_key: str | None = None
        self.rate_headers = True
        self.count = 0
        self.by_status: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        # the chat window: first arrival to last answer, and the request-seconds in it
        self.first_arrival: float | None = None
        self.last_settled: float | None = None
        self.flight_seconds = 0.0
        # per keep-alive connection, its answer written to its next request read: the time a
        # client's place spends on the client's side (raw front)
        self.client_gaps: deque[float] = deque(maxlen=KEPT_GAPS)
        self.bodies: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)
        self.headers: deque[dict[str, str]] = deque(maxlen=KEPT_REQUESTS)
        self.accepted: deque[float] = deque()
        self.release_hung()

    def release_hung(self) -> None:
        """Drop every hung request's connection (reset, and a front shutting down)."""
        for conn in list(self.hung):
            conn.abort()
        self.hung.clear()

    def apply_script(self, data: dict[str, Any]) -> None:
        """Add rules / change settings; unknown keys are an error, not a silent no-op."""
        data = dict(data)
        if data.pop("replace", False):
            self.rules = []
        for key in SETTINGS:
            if key in data:
                setattr(self, key, data.pop(key))
        self.rpm_window_s = float(self.rpm_window_s)
        rules = data.pop("rules", None)
        for item in rules or []:
            self.rules.append(_make_rule(item))
        if data:
            self.rules.append(_make_rule(data))

    def plan(self, body: dict[str, Any]) -> Effects:
        effects = Effects()
        if not self.rules:
            return effects
        text = replies.prompt_text(body)
        for rule in self.rules:
            if rule.applies(text, body):
                effects.merge(rule)
        return effects

    def rpm_wait(self, now: float) -> float | None:
        """Seconds until a request fits the server-side RPM limit, or None if it fits now."""
        if not self.rpm:
            return None
        window = self.rpm_window_s
        allowed = max(1, int(self.rpm * window / 60.0))
        while self.accepted and self.accepted[0] <= now - window:
            self.accepted.popleft()
        if len(self.accepted) >= allowed:
            return self.accepted[0] + window - now
        self.accepted.append(now)
        return None

    def limit_headers(self, now: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-*-requests for the RPM limit (after ``rpm_wait``), if any."""
        if not self.rpm or not self.rate_headers:
            return {}
        window = self.rpm_window_s
        allowed = max(1, int(self.rpm * window / 60.0))
        reset = self.accepted[0] + window - now if self.accepted else 0.0
        return {"x-ratelimit-limit-requests": str(self.rpm),
                "x-ratelimit-remaining-requests": str(max(0, allowed - len(self.accepted))),
                "x-ratelimit-reset-requests": f"{max(0.0, reset):.3f}s"}

    def stats(self) -> dict[str, Any]:
        window = (self.last_settled - self.first_arrival
                  if self.first_arrival is not None and self.last_settled is not None else 0.0)
        return {
            "requests": self.count,
            "by_status": dict(self.by_status),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            # the busy window, and the mean requests in flight across it
            "window_s": round(window, 4),
            "mean_in_flight": round(self.flight_seconds / window, 2) if window else 0.0,
            # the window's ends on the machine's monotonic clock (time.monotonic() elsewhere)
            "first_arrival": self.first_arrival,
            "last_settled": self.last_settled,
            "client_gap_ms": _percentiles(self.client_gaps),
        }


def _percentiles(seconds: deque[float]) -> dict[str, float] | None:
    """Mean and percentiles in milliseconds, or None with nothing measured."""
    if not seconds:
        return None
    ranked = sorted(seconds)

    def at(q: float) -> float:
        return round(ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1000, 2)

    return {"n": len(ranked), "mean": round(sum(ranked) / len(ranked) * 1000, 2),
            "p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def _make_rule(data: dict[str, Any]) -> Rule:
    unknown = set(data) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"unknown script keys {sorted(unknown)}; known: {sorted(_RULE_FIELDS | set(SETTINGS))}")
    return Rule(**data)


