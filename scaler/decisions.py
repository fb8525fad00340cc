"""The newest decision (or error) per ScaledObject trigger, for `GET /scaledobjects`.

Written by the service on the event loop, read by the HTTP thread, so every access holds a
lock. Entries not refreshed for `idle_after_s` are dropped, which bounds memory by the
ScaledObjects KEDA still asks about.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Key = tuple[str, str, str]
"""(namespace, ScaledObject name, metric name)."""


class DecisionLog:
    def __init__(self, idle_after_s: float, clock: Callable[[], float],
                 on_forget: Callable[[Key, dict[str, Any]], None] = lambda key, old: None,
                 ) -> None:
        self._idle_after_s = idle_after_s
        self._clock = clock
        self._on_forget = on_forget
        self._entries: dict[Key, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def record(self, key: Key, explanation: dict[str, Any]) -> None:
        now = self._clock()
        with self._lock:
            self._entries[key] = (now, explanation)
            idle = [(k, self._entries.pop(k)[1]) for k, (at, _) in list(self._entries.items())
                    if now - at > self._idle_after_s]
        for gone, explanation in idle:
            self._on_forget(gone, explanation)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = sorted(self._entries.items())
        return [self._shape(key, explanation) for key, (_, explanation) in entries]

    def of(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.all()
                if (entry["namespace"], entry["name"]) == (namespace, name)]

    @staticmethod
    def _shape(key: Key, explanation: dict[str, Any]) -> dict[str, Any]:
        namespace, name, metric = key
        return {"namespace": namespace, "name": name, "metricName": metric, **explanation}
