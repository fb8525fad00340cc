"""The small interface every queue system implements, and the value types it returns.

A source reports facts (offsets, depths, rates); it never decides anything. A `Source` is one
connection to one broker or cluster and serves every trigger that points at it: `read_many`
reads all the targets due in one poll cycle with as few broker requests as it can, and reports
a reading or an error per target, so one broken target never hides the others.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

from scaler import policy
from scaler.errors import MetadataError, SourceError


class Arrivals(NamedTuple):
    total: float | None = None
    """Messages ever appended: the poller turns two of these into a rate."""
    rate: float | None = None
    """Messages per second, as the broker measured them."""


class Reading(Protocol):
    """Facts read from a broker for one trigger."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for decision explanations (never secrets)."""
        ...

    def progress(self) -> Mapping[Hashable, object]:
        """Markers that change when consumers make progress (Kafka: committed offset per
        partition); the poller tracks how long each has stood still."""
        ...

    def arrivals(self) -> Arrivals | None:
        """How many messages have arrived: a cumulative count (Kafka's log-end offsets, a
        queue's enqueue counter) or a rate the broker measured (RabbitMQ's publish rate), for
        scalingStrategy: throughput. None when this reading cannot tell."""
        ...


class Source(Protocol):
    def read_many(self, targets: Sequence[Any]) -> Mapping[Hashable, Reading | SourceError]:
        """Reads every target (this source's own metadata type), keyed by `target_key()`.
        Blocks; a failure of the whole connection may also be raised as a SourceError."""
        ...

    def close(self) -> None: ...


class TriggerMetadata(Protocol):
    """What the poller and the service need from a source's parsed metadata."""

    source_name: ClassVar[str]

    def validate(self) -> list[MetadataError]: ...

    def connection_key(self) -> Hashable:
        """Equal for triggers that can share one connection (same servers and credentials)."""
        ...

    def target_key(self) -> Hashable:
        """Equal for triggers that read the same facts (one read serves them all)."""
        ...

    def metric_name(self) -> str:
        """The metric name KEDA will use, formed as KEDA's built-in scaler forms it."""
        ...

    def target_value(self) -> float:
        """Per-replica target (lagThreshold, value) reported in the MetricSpec."""
        ...

    def measures_arrivals(self) -> bool:
        """True when this trigger's readings report `arrivals()` (scalingStrategy:
        throughput needs them)."""
        ...

    def needs_progress(self) -> bool:
        """True when `decide` uses `stalled` (Kafka's excludePersistentLag). The poller tracks
        progress markers only for targets a trigger needs them for: with hundreds of
        thousands of partitions, tracking costs memory and event-loop time every cycle."""
        ...

    def open_source(self, timeout_s: float) -> Source:
        """A new connection for `connection_key()`; it connects lazily on first read."""
        ...

    def decide(self, reading: Reading, bounds: policy.ReplicaBounds,
               stalled: frozenset[Hashable]) -> policy.Decision:
        """`stalled`: progress markers of `reading` that have not moved for the poller's
        persistence window."""
        ...
