"""What the two fake batch APIs share: a script of settings, faults on control routes, routing.

``FakeBatches`` (OpenAI's files + batches) and ``anthropic_batches.BatchStore`` (Message
Batches) differ in their routes, objects and error shapes; both take the same script
(``set_script``), fail a scripted number of calls to a named route (``control``: route,
status, times, retry_after) and answer a routed request the same way (``handle``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

__all__ = ["ScriptedControl"]

Reply = tuple[int, bytes, dict[str, str]]


class ScriptedControl:
    """The base of a fake batch API; subclasses give ``SETTINGS``, ``_route`` and ``_error``."""

    SETTINGS: dict[str, Any] = {}
    NAME = "fake batch API"  # in the text of a scripted failure

    def reset(self) -> None:
        self.script: dict[str, Any] = dict(self.SETTINGS)
        self.faults: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()

    def set_script(self, data: dict[str, Any]) -> dict[str, Any]:
        unknown = set(data) - set(self.SETTINGS) - {"replace"}
        if unknown:
            raise ValueError(f"unknown batch script keys {sorted(unknown)}; known: {sorted(self.SETTINGS)}")
        if data.get("replace"):
            self.script = dict(self.SETTINGS)
        self.script.update({k: v for k, v in data.items() if k != "replace"})
        self.faults = [dict(f) for f in self.script.get("control") or []]
        return {"ok": True}

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply | None:
        """The answer to a request on one of this API's routes, or None when it is not one."""
        route = self._route(method, path)
        if route is None:
            return None
        name, args = route
        self.routes[name] += 1
        fault = self._fault(name)
        if fault is not None:
            return fault
        try:
            status, payload = getattr(self, f"_{name}")(*args, query=query, headers=headers, body=body)
        except KeyError as exc:
            return 404, self._error(404, self._missing(exc.args[0])), {}
        except ValueError as exc:
            return 400, self._error(400, str(exc)), {}
        return status, payload if isinstance(payload, bytes) else json.dumps(payload).encode(), {}

    def _fault(self, name: str) -> Reply | None:
        for fault in self.faults:
            if fault.get("route") == name and fault.get("times", 1) > 0:
                fault["times"] = fault.get("times", 1) - 1
                extra = {"retry-after": str(fault["retry_after"])} if "retry_after" in fault else {}
                status = int(fault.get("status", 500))
                return status, self._error(status, f"{self.NAME} scripted status {status}"), extra
        return None

    def _route(self, method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
        raise NotImplementedError

    def _error(self, status: int, message: str) -> bytes:
        raise NotImplementedError

    def _missing(self, key: str) -> str:
        return f"No such object: {key}"
