"""The newest decision (or error) per ScaledObject trigger, for `GET /scaledobjects`, and the
cache that lets KEDA's back-to-back calls on one snapshot share one decision.

Written by the service on the event loop, read by the HTTP thread, so every access holds a
lock. Entries not refreshed for `idle_after_s` are dropped, which bounds memory by the
ScaledObjects KEDA still asks about. Explanations are rendered only when someone asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

Key = tuple[str, str, str]
"""(namespace, ScaledObject name, metric name)."""


class Explainable(Protocol):
    @property
    def source_name(self) -> str: ...

    def describe(self, now: float) -> dict[str, Any]: ...


class DecisionLog:
    def __init__(self, idle_after_s: float, clock: Callable[[], float],
                 on_forget: Callable[[Key, Explainable], None] = lambda key, old: None,
                 ) -> None:
        self._idle_after_s = idle_after_s
        self._clock = clock
        self._on_forget = on_forget
        self._entries: dict[Key, tuple[float, Explainable]] = {}
        self._lock = threading.Lock()
        self._swept_at = clock()

    def record(self, key: Key, item: Explainable) -> None:
        now = self._clock()
        with self._lock:
            self._entries[key] = (now, item)
        if now - self._swept_at > min(10.0, self._idle_after_s):
            self._sweep(now)

    def latest(self, key: Key) -> Explainable | None:
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def all(self) -> list[dict[str, Any]]:
        """Every trigger's decision without the broker facts (those can be 100,000s of
        partitions); `of()` has them."""
        with self._lock:
            entries = sorted(self._entries.items())
        now = self._clock()
        summaries = []
        for key, (_, item) in entries:
            explanation = item.describe(now)
            explanation.pop("reading", None)
            summaries.append(self._shape(key, explanation))
        return summaries

    def of(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """One ScaledObject's triggers, with the broker facts each decision was made from."""
        with self._lock:
            entries = sorted((key, item) for key, (_, item) in self._entries.items()
                             if key[:2] == (namespace, name))
        now = self._clock()
        return [self._shape(key, item.describe(now)) for key, item in entries]

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        with self._lock:
            idle = [(key, self._entries.pop(key)[1]) for key, (at, _) in list(self._entries.items())
                    if now - at > self._idle_after_s]
        for key, item in idle:
            self._on_forget(key, item)

    @staticmethod
    def _shape(key: Key, explanation: dict[str, Any]) -> dict[str, Any]:
        namespace, name, metric = key
        return {"namespace": namespace, "name": name, "metricName": metric, **explanation}
