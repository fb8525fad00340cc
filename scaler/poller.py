"""Reads broker facts for triggers: one connection per broker, one read per target at a time.

KEDA calls GetMetricSpec, GetMetrics and IsActive back to back for every ScaledObject, so a
reading younger than `max_age_s` is reused, and concurrent callers for the same target wait on
the one read in flight (single flight). Triggers with equal `connection_key()` share a `Source`
(one Kafka client per cluster, one AMQP connection per broker). Blocking reads run on a thread
pool so they never stall the event loop that serves other RPCs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Hashable

from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    TargetNotFoundError,
)
from scaler.sources import base


@dataclasses.dataclass(frozen=True)
class Snapshot:
    reading: base.Reading
    previous: base.Reading | None
    """The reading before this one (for excludePersistentLag), None on the first read."""
    read_at: float


@dataclasses.dataclass
class _Target:
    snapshot: Snapshot | None = None
    in_flight: asyncio.Future[Snapshot] | None = None


class Poller:
    def __init__(
        self,
        *,
        broker_timeout_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_threads: int = 32,
        on_read: Callable[[str, str, float], None] = lambda source, outcome, seconds: None,
    ) -> None:
        self._broker_timeout_s = broker_timeout_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._on_read = on_read
        self._sources: dict[Hashable, base.Source] = {}
        self._targets: dict[Hashable, _Target] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="broker-read")

    def age_of(self, snapshot: Snapshot) -> float:
        return max(0.0, self._clock() - snapshot.read_at)

    async def read(self, trigger: base.TriggerMetadata, max_age_s: float | None = None
                   ) -> Snapshot:
        """The newest reading for `trigger`, no older than `max_age_s` (default: the poller's)."""
        max_age = self._max_age_s if max_age_s is None else max_age_s
        target = self._targets.setdefault(trigger.target_key(), _Target())
        if target.snapshot is not None and self.age_of(target.snapshot) <= max_age:
            return target.snapshot
        if target.in_flight is None:
            target.in_flight = asyncio.ensure_future(self._read_now(trigger, target))
        # shield: one caller giving up (its RPC cancelled) must not cancel the shared read.
        return await asyncio.shield(target.in_flight)

    async def _read_now(self, trigger: base.TriggerMetadata, target: _Target) -> Snapshot:
        source = self._source_for(trigger)
        started = self._clock()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._broker_timeout_s):
                reading = await loop.run_in_executor(self._executor, source.read, trigger)
        except TimeoutError as exc:
            self._on_read(trigger.source_name, "timeout", self._clock() - started)
            raise BrokerUnavailableError(
                f"{trigger.source_name}: no answer from the broker within "
                f"{self._broker_timeout_s:g} s") from exc
        except Exception as exc:
            self._on_read(trigger.source_name, _outcome(exc), self._clock() - started)
            raise
        finally:
            target.in_flight = None
        self._on_read(trigger.source_name, "ok", self._clock() - started)
        previous = target.snapshot.reading if target.snapshot is not None else None
        target.snapshot = Snapshot(reading=reading, previous=previous, read_at=self._clock())
        return target.snapshot

    def _source_for(self, trigger: base.TriggerMetadata) -> base.Source:
        key = trigger.connection_key()
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = trigger.open_source(self._broker_timeout_s)
        return source

    def close(self) -> None:
        """Closes every broker connection; reads in flight finish or fail on their own."""
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            source.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _outcome(exc: Exception) -> str:
    """A short, bounded label for a failed read."""
    if isinstance(exc, TargetNotFoundError):
        return "not_found"
    if isinstance(exc, BrokerAuthError):
        return "auth"
    if isinstance(exc, SourceError):
        return "unavailable"
    return "error"
