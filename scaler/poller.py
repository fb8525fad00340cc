"""Shared background polling: one connection and one poll loop per broker or cluster.

Every trigger KEDA asks about is registered with the loop of its connection (triggers with
equal `connection_key()` share it). Each cycle reads all the targets that are due with one
batched `read_many` on a worker thread (which, in the serving process, waits for the reader
process: scaler.sources.reader_process), and publishes an immutable `Snapshot` per target.
RPCs answer from the newest snapshot; a cold request wakes the loop and waits for the cycle
that reads its target, so concurrent requests share one read (single flight). Targets with an
open StreamIsActive are read every `stream_interval_s`, others every `poll_interval_s`; a
target nobody asked about for `idle_after_s` stops being polled, and a connection without
targets is closed.

Freshness rules, in `_answer`: data younger than `max_age_s` is served as it is. When reads
fail with a retriable error, the last good reading is served until it is `stale_after_s` old,
then the answer is UNAVAILABLE; an error that will not go away by retrying (missing topic,
refused credentials) is answered at once. A failed read is never turned into a value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import Any

from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    StaleDataError,
    TargetNotFoundError,
)
from scaler.policy import throughput
from scaler.sources import base

log = logging.getLogger(__name__)

_TARGETS_PER_SLICE = 50


@dataclasses.dataclass(frozen=True)
class Snapshot:
    reading: base.Reading
    read_at: float
    """Poller clock time of the read."""
    stalled: frozenset[Hashable]
    """Progress markers (Kafka partitions) that have not moved for `persistent_after_s`."""
    last_error: Exception | None = None
    """Set when newer reads failed and this older reading is served within the stale bound."""
    arrival_rates: Mapping[float, float] = dataclasses.field(default_factory=dict)
    """Smoothed arrivals per second by half-life (scalingStrategy: throughput), once
    measured."""


@dataclasses.dataclass(frozen=True)
class PollerSettings:
    broker_timeout_s: float = 2.5
    poll_interval_s: float = 2.0
    max_age_s: float = 5.0
    stale_after_s: float = 60.0
    idle_after_s: float = 300.0
    stream_interval_s: float = 1.0
    persistent_after_s: float = 30.0


class _Target:
    def __init__(self, trigger: base.TriggerMetadata, now: float) -> None:
        self.trigger = trigger
        self.snapshot: Snapshot | None = None
        self.error: Exception | None = None
        self.attempted_at = float("-inf")
        self.requested_at = now
        self.wanted = False
        self.streams = 0
        self.progress: dict[Hashable, tuple[object, float]] = {}
        # Set once any trigger of this target needs progress tracked (see needs_progress).
        self.tracks_progress = False
        # Half-life -> the arrival rate smoothed with it, for triggers that asked for one.
        self.arrival_rates: dict[float, _ArrivalRate] = {}
        self.updated = asyncio.Event()


@dataclasses.dataclass
class _ArrivalRate:
    """One target's arrival rate, smoothed over polls with one half-life."""

    half_life_s: float
    rate: float | None = None
    total: float | None = None
    """The cumulative count at `at` (sources that count rather than measure a rate)."""
    at: float = float("-inf")

    def update(self, arrivals: base.Arrivals, now: float) -> None:
        sample = arrivals.rate
        if arrivals.total is not None:
            sample = (None if self.total is None
                      else throughput.rate_between(self.total, arrivals.total, now - self.at))
            self.total = arrivals.total
        if sample is not None:
            self.rate = throughput.smooth(self.rate, sample, now - self.at, self.half_life_s)
        self.at = now


class _Connection:
    def __init__(self, source: base.Source) -> None:
        self.source = source
        self.targets: dict[Hashable, _Target] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.reading: asyncio.Future[Mapping[Hashable, base.Reading | SourceError]] | None = None


class Poller:
    def __init__(
        self,
        settings: PollerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_threads: int = 32,
        on_read: Callable[[str, str], None] = lambda source, outcome: None,
        on_cycle: Callable[[str, int, float], None] = lambda source, targets, seconds: None,
        open_source: Callable[[base.TriggerMetadata, float], base.Source] | None = None,
    ) -> None:
        """`open_source`: where connections are opened (the serving process passes its
        reader process); by default in this process, with the trigger's own `open_source`."""
        self.settings = settings
        self._open_source = open_source or _open_here
        self._clock = clock
        self._on_read = on_read
        self._on_cycle = on_cycle
        self._connections: dict[Hashable, _Connection] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="broker-read")
        self._closed = False
        self._watches_ended = False

    def age_of(self, snapshot: Snapshot) -> float:
        return max(0.0, self._clock() - snapshot.read_at)

    def stats(self) -> dict[str, int]:
        """How much is being polled: for explanations and benchmarks."""
        return {"connections": len(self._connections),
                "targets": sum(len(c.targets) for c in self._connections.values())}

    async def read(self, trigger: base.TriggerMetadata,
                   arrival_half_life_s: float | None = None) -> Snapshot:
        """The newest reading for `trigger` under the freshness rules; raises its error.
        `arrival_half_life_s`: also measure the target's arrival rate, smoothed with it."""
        connection, target = self._register(trigger, arrival_half_life_s)
        deadline = self._clock() + self.settings.broker_timeout_s + 1.0
        asked_at = self._clock()
        while True:
            # An attempt made after we asked is fresh enough for us, whatever max age says.
            answer = self._answer(target, fresh=target.attempted_at >= asked_at)
            if answer is not None:
                return answer
            target.wanted = True
            connection.wake.set()
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise BrokerUnavailableError(
                    f"{trigger.source_name}: no reading within "
                    f"{self.settings.broker_timeout_s:g} s")
            updated = target.updated
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(updated.wait(), timeout=remaining)

    async def watch(self, trigger: base.TriggerMetadata,
                    arrival_half_life_s: float | None = None
                    ) -> AsyncIterator[Snapshot | Exception]:
        """The current answer, then a new one after every read of `trigger`, which is read
        every `stream_interval_s` while the watch is open."""
        _, target = self._register(trigger, arrival_half_life_s)
        target.streams += 1
        try:
            while not self._watches_ended:
                updated = target.updated
                try:
                    yield await self.read(trigger, arrival_half_life_s)
                except Exception as exc:  # noqa: BLE001 - the watcher decides what to do
                    yield exc
                await updated.wait()
        finally:
            target.streams -= 1

    def end_watches(self) -> None:
        """Ends every open watch (their streams finish normally, so that a shutdown need not
        wait for its grace period and then cancel them); reads go on until close()."""
        self._watches_ended = True
        for connection in self._connections.values():
            for target in connection.targets.values():
                target.updated.set()

    def close(self) -> None:
        """Stops every poll loop and closes every broker connection."""
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            if connection.task is not None:
                connection.task.cancel()
            connection.source.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- internals

    def _register(self, trigger: base.TriggerMetadata, arrival_half_life_s: float | None = None
                  ) -> tuple[_Connection, _Target]:
        if self._closed:
            raise BrokerUnavailableError("the scaler is shutting down")
        now = self._clock()
        connection = self._connections.get(trigger.connection_key())
        if connection is None:
            connection = _Connection(self._open_source(trigger, self.settings.broker_timeout_s))
            self._connections[trigger.connection_key()] = connection
        target = connection.targets.get(trigger.target_key())
        if target is None:
            target = connection.targets[trigger.target_key()] = _Target(trigger, now)
        target.requested_at = now
        target.tracks_progress = target.tracks_progress or trigger.needs_progress()
        if arrival_half_life_s is not None and arrival_half_life_s not in target.arrival_rates:
            target.arrival_rates[arrival_half_life_s] = _ArrivalRate(arrival_half_life_s)
        if connection.task is None or connection.task.done():
            connection.task = asyncio.get_running_loop().create_task(
                self._poll(trigger.connection_key(), connection),
                name=f"poll-{trigger.source_name}")
        return connection, target

    def _answer(self, target: _Target, *, fresh: bool = False) -> Snapshot | None:
        """The freshness rules (module docstring); None means: read again first."""
        now = self._clock()
        settings = self.settings
        if not fresh and now - target.attempted_at > settings.max_age_s:
            return None
        error = target.error
        if error is None:
            return target.snapshot
        if not getattr(error, "retriable", False):
            raise error
        snapshot = target.snapshot
        if snapshot is None:
            raise error
        age = now - snapshot.read_at
        if age <= settings.stale_after_s:
            return dataclasses.replace(snapshot, last_error=error)
        raise StaleDataError(
            f"the last good reading is {age:.0f} s old, past the {settings.stale_after_s:g} s "
            f"staleness bound; reads fail with: {error}")

    def _interval(self, target: _Target) -> float:
        if target.streams > 0:
            return self.settings.stream_interval_s
        return self.settings.poll_interval_s

    async def _poll(self, key: Hashable, connection: _Connection) -> None:
        try:
            while not self._closed:
                connection.wake.clear()
                now = self._clock()
                idle_since = now - self.settings.idle_after_s
                for target_key, target in list(connection.targets.items()):
                    if target.streams == 0 and target.requested_at < idle_since:
                        del connection.targets[target_key]
                if not connection.targets:
                    break
                due = [t for t in connection.targets.values()
                       if t.wanted or now - t.attempted_at >= self._interval(t)]
                if due:
                    # Coalesce: targets due within half an interval ride along, so targets
                    # registered at different moments fall into step and share one read.
                    due = [t for t in connection.targets.values()
                           if t.wanted or now - t.attempted_at >= self._interval(t) / 2]
                if due:
                    await self._cycle(connection, due)
                    continue
                next_due = min(t.attempted_at + self._interval(t)
                               for t in connection.targets.values())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(connection.wake.wait(), timeout=next_due - now)
        finally:
            if self._connections.get(key) is connection and not connection.targets:
                del self._connections[key]
                connection.source.close()

    async def _cycle(self, connection: _Connection, due: list[_Target]) -> None:
        for target in due:
            target.wanted = False
        triggers = [target.trigger for target in due]
        source_name = triggers[0].source_name
        started = self._clock()
        results: Mapping[Hashable, base.Reading | SourceError] = {}
        failure: Exception | None = None
        if connection.reading is not None and not connection.reading.done():
            # A read that outlived its timeout still holds the connection: do not pile up.
            failure = BrokerUnavailableError(
                f"{source_name}: the previous read has not returned after "
                f"{self.settings.broker_timeout_s:g} s")
        else:
            loop = asyncio.get_running_loop()
            connection.reading = loop.run_in_executor(
                self._executor, connection.source.read_many, triggers)
            # A read that outlives its timeout still ends; nobody awaits it then, so take its
            # outcome here (asyncio would log an unretrieved exception with a traceback).
            connection.reading.add_done_callback(_consume_outcome)
            try:
                async with asyncio.timeout(self.settings.broker_timeout_s):
                    results = await asyncio.shield(connection.reading)
            except TimeoutError:
                failure = BrokerUnavailableError(
                    f"{source_name}: no answer from the broker within "
                    f"{self.settings.broker_timeout_s:g} s")
            except SourceError as exc:
                failure = exc
            except Exception as exc:
                log.exception("reading %s failed unexpectedly", source_name)
                failure = exc
        now = self._clock()
        self._on_cycle(source_name, len(due), now - started)
        for index, target in enumerate(due):
            if index and not index % _TARGETS_PER_SLICE:
                await asyncio.sleep(0)  # let waiting RPCs run between slices of a big cycle
            # Not `or`: a reading of no partitions or queues is empty, hence false, and valid.
            result = failure if failure is not None else results.get(target.trigger.target_key())
            if result is None:
                result = BrokerUnavailableError(
                    f"{source_name}: the read returned nothing for a target")
            self._on_read(source_name, _outcome(result))
            target.attempted_at = now
            if isinstance(result, Exception):
                target.error = result
            else:
                target.error = None
                stalled = (self._track_progress(target, result, now) if target.tracks_progress
                           else frozenset())
                target.snapshot = Snapshot(result, now, stalled,
                                           arrival_rates=_arrival_rates(target, result, now))
            updated, target.updated = target.updated, asyncio.Event()
            updated.set()

    def _track_progress(self, target: _Target, reading: base.Reading, now: float
                        ) -> frozenset[Hashable]:
        """Markers whose value has not changed for `persistent_after_s` (seen at least twice)."""
        tracked: dict[Hashable, tuple[object, float]] = {}
        stalled = set()
        for marker, value in reading.progress().items():
            before = target.progress.get(marker)
            if before is not None and before[0] == value:
                tracked[marker] = before
                if now - before[1] >= self.settings.persistent_after_s:
                    stalled.add(marker)
            else:
                tracked[marker] = (value, now)
        target.progress = tracked
        return frozenset(stalled)


def _arrival_rates(target: _Target, reading: base.Reading, now: float) -> dict[float, float]:
    if not target.arrival_rates:
        return {}
    arrivals = reading.arrivals()
    rates = {}
    for half_life, tracked in target.arrival_rates.items():
        if arrivals is not None:
            tracked.update(arrivals, now)
        if tracked.rate is not None:
            rates[half_life] = tracked.rate
    return rates


def _open_here(trigger: base.TriggerMetadata, timeout_s: float) -> base.Source:
    return trigger.open_source(timeout_s)


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _outcome(result: object) -> str:
    """A short, bounded label for the result of one read."""
    if isinstance(result, TargetNotFoundError):
        return "not_found"
    if isinstance(result, BrokerAuthError):
        return "auth"
    if isinstance(result, SourceError):
        return "unavailable"
    if isinstance(result, Exception):
        return "error"
    return "ok"
