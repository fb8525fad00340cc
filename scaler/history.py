"""What each trigger did lately, in bounded memory: its newest answer (a decision or an error)
for the status page, its metric value, target and desired replicas over the last `window_s` for
the page's charts, and whether a new decision changed activity or replicas (worth a log line).

Samples are downsampled into `step_s` buckets (the highest value and replica count of a bucket
are kept, so a short spike still shows) and kept in fixed-size ring buffers of packed arrays.
At most `max_triggers` are tracked; the one decided on least recently goes first, and a trigger
with no answer for `window_s` is forgotten. Written on the event loop and read by the HTTP
thread, so every access holds a lock. Time is the injected clock's; no I/O.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import math
import threading
from array import array
from collections.abc import Callable, Sequence

Key = tuple[str, str, str]
"""(namespace, ScaledObject name, metric name)."""

INVALID_METADATA = "(invalid metadata)"
"""The metric name a trigger is kept under while its metadata does not parse (no name yet)."""
WINDOW_S = 30 * 60.0
STEP_S = 15.0
MAX_TRIGGERS = 5_000


@dataclasses.dataclass(frozen=True)
class Answer:
    """The newest answer for one trigger, with only fields that are safe to show."""

    source: str
    metric_value: float | None = None
    """None when the newest answer was an error."""
    target: float | None = None
    desired_replicas: int | None = None
    is_active: bool | None = None
    read_at: float | None = None
    """Clock time of the reading the decision was made from."""
    error: str | None = None
    """The newest error (also set when an older reading is served while reads fail)."""
    error_code: str | None = None
    """The gRPC status code name that error is answered with."""
    stale: bool = False
    """An error answer because the newest good reading is older than the staleness bound."""

    @property
    def is_error(self) -> bool:
        return self.metric_value is None and self.error_code is not None


@dataclasses.dataclass(frozen=True)
class Change:
    """A decision that differs from the trigger's previous one in activity or replicas.
    `was_active` and `previous_replicas` are None for a trigger's first decision."""

    was_active: bool | None
    is_active: bool
    previous_replicas: int | None
    desired_replicas: int

    @property
    def is_first(self) -> bool:
        return self.was_active is None


@dataclasses.dataclass(frozen=True)
class TriggerView:
    """One trigger as the status page shows it: the newest answer and the samples of the
    window, oldest first (parallel sequences)."""

    namespace: str
    name: str
    metric_name: str
    answer: Answer
    answered_at: float
    times: Sequence[float]
    values: Sequence[float]
    targets: Sequence[float]
    replicas: Sequence[float]


@dataclasses.dataclass(frozen=True)
class View:
    now: float
    window_s: float
    step_s: float
    triggers: list[TriggerView]
    namespaces: list[str]
    """Every namespace tracked, whatever the filter."""


class _Series:
    """One trigger's ring buffer: `capacity` buckets of (time, value, target, replicas)."""

    __slots__ = ("answer", "answered_at", "count", "decision", "replicas", "start", "targets",
                 "times", "values")

    def __init__(self, answer: Answer, now: float) -> None:
        self.answer = answer
        self.answered_at = now
        self.decision: tuple[bool, int] | None = None
        # Packed: 8 + 4 + 4 + 4 bytes a sample, grown up to the capacity, then overwritten.
        self.times = array("d")
        self.values = array("f")
        self.targets = array("f")
        self.replicas = array("f")
        self.start = 0
        self.count = 0

    def add(self, at: float, value: float, target: float, replicas: int, step_s: float,
            capacity: int) -> None:
        if self.count and math.floor(self.times[self._last()] / step_s) == math.floor(at / step_s):
            last = self._last()
            self.times[last] = at
            self.values[last] = max(self.values[last], value)
            self.targets[last] = target
            self.replicas[last] = max(self.replicas[last], replicas)
            return
        if self.count < capacity:
            self.times.append(at)
            self.values.append(value)
            self.targets.append(target)
            self.replicas.append(replicas)
            self.count += 1
            return
        slot = self.start
        self.times[slot], self.values[slot] = at, value
        self.targets[slot], self.replicas[slot] = target, replicas
        self.start = (self.start + 1) % capacity

    def _last(self) -> int:
        return (self.start + self.count - 1) % len(self.times)

    def since(self, oldest: float) -> tuple[array[float], ...]:
        """Copies of the samples at or after `oldest`, oldest first."""
        start = self.start
        columns = tuple(column[start:] + column[:start] for column in (
            self.times, self.values, self.targets, self.replicas))
        skip = bisect.bisect_left(columns[0], oldest)
        return tuple(column[skip:] for column in columns)


class History:
    def __init__(self, clock: Callable[[], float], *, window_s: float = WINDOW_S,
                 step_s: float = STEP_S, max_triggers: int = MAX_TRIGGERS) -> None:
        self.window_s = window_s
        self.step_s = step_s
        self.max_triggers = max_triggers
        self._capacity = math.ceil(window_s / step_s) + 1
        self._clock = clock
        # Least recently answered first: eviction and forgetting take from the front.
        self._series: collections.OrderedDict[Key, _Series] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._swept_at = clock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)

    def record_decision(self, key: Key, source: str, *, metric_value: float, target: float,
                        desired_replicas: int, is_active: bool, read_at: float,
                        error: str | None = None, error_code: str | None = None,
                        ) -> Change | None:
        """Keeps a decision (made from a reading taken at `read_at`; `error` when it was served
        from an older reading because newer reads fail) and returns how it changed activity or
        replicas from the trigger's previous decision, if it did."""
        answer = Answer(source, metric_value, target, desired_replicas, is_active, read_at,
                        error, error_code)
        now = self._clock()
        decision = (is_active, desired_replicas)
        with self._lock:
            series = self._touch(key, answer, now)
            # A value that is no number (none of our policies makes one) cannot be drawn.
            if math.isfinite(metric_value) and math.isfinite(target):
                series.add(now, metric_value, target, desired_replicas, self.step_s,
                           self._capacity)
            before, series.decision = series.decision, decision
        self._sweep(now)
        if before == decision:
            return None
        return Change(None if before is None else before[0], is_active,
                      None if before is None else before[1], desired_replicas)

    def record_error(self, key: Key, source: str, error: str, error_code: str,
                     stale: bool = False) -> None:
        """Keeps an error answer; the samples and the last decision stay as they were."""
        now = self._clock()
        with self._lock:
            self._touch(key, Answer(source, error=error, error_code=error_code, stale=stale),
                        now)
        self._sweep(now)

    def failing(self, within_s: float) -> list[tuple[Key, Answer]]:
        """The triggers answered in the last `within_s` seconds whose newest answer was an
        error."""
        oldest = self._clock() - within_s
        with self._lock:
            return [(key, series.answer) for key, series in self._series.items()
                    if series.answered_at >= oldest and series.answer.is_error]

    def view(self, namespace: str | None = None) -> View:
        """Every trigger (of `namespace`, when given), sorted by key, with its samples."""
        now = self._clock()
        oldest = now - self.window_s
        with self._lock:
            entries = [(key, series) for key, series in self._series.items()
                       if series.answered_at >= oldest]
            namespaces = sorted({key[0] for key, _ in entries})
            picked = [(key, series.answer, series.answered_at, series.since(oldest))
                      for key, series in entries if namespace is None or key[0] == namespace]
        picked.sort(key=lambda entry: entry[0])
        return View(now, self.window_s, self.step_s, [
            TriggerView(key[0], key[1], key[2], answer, answered_at, *columns)
            for key, answer, answered_at, columns in picked], namespaces)

    def _touch(self, key: Key, answer: Answer, now: float) -> _Series:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(answer, now)
            if len(self._series) > self.max_triggers:
                self._series.popitem(last=False)
        else:
            series.answer = answer
            series.answered_at = now
            self._series.move_to_end(key)
        return series

    def _sweep(self, now: float) -> None:
        """Forgets triggers without an answer for the window: the front of the order."""
        if now - self._swept_at < self.step_s:
            return
        self._swept_at = now
        oldest = now - self.window_s
        with self._lock:
            while self._series:
                key, series = next(iter(self._series.items()))
                if series.answered_at >= oldest:
                    break
                del self._series[key]
