"""The small interface every queue system implements, and the value types it returns.

A source reports facts (offsets, depths, rates); it never decides anything. A `Source` is one
connection to one broker or cluster and serves every trigger that points at it; `read` blocks
and raises only `SourceError` subclasses.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar, Protocol

from scaler import policy
from scaler.errors import MetadataError


class Reading(Protocol):
    """Facts read from a broker for one trigger."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for decision explanations (never secrets)."""
        ...


class Source(Protocol):
    def read(self, target: Any) -> Reading:
        """Reads the facts `target` (this source's own metadata type) asks for."""
        ...

    def close(self) -> None: ...


class TriggerMetadata(Protocol):
    """What the service needs from a source's parsed metadata, whatever the queue system."""

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

    def open_source(self, timeout_s: float) -> Source:
        """A new connection for `connection_key()`; it connects lazily on first read."""
        ...

    def decide(
        self, reading: Reading, bounds: policy.ReplicaBounds, previous: Reading | None
    ) -> policy.Decision: ...
