"""What a RabbitMQ read returns: per-queue facts, whichever protocol read them."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

from scaler.policy import depth
from scaler.sources import base


@dataclasses.dataclass(frozen=True)
class QueueStats:
    name: str
    ready: int
    unacknowledged: int | None
    """None over AMQP, which does not report it."""
    publish_rate: float | None
    """Messages/s published; None over AMQP."""
    deliver_get_rate: float | None
    """Messages/s delivered to consumers or fetched; None over AMQP."""
    consumers: int
    head_message_timestamp: int | None = None
    """The management API's `head_message_timestamp`: the AMQP `timestamp` property (whole
    seconds since the epoch) of the oldest of the next ready message and the messages
    delivered but not yet acknowledged. None for an empty queue, for a head message without
    the property, or for one RabbitMQ keeps on disk only (a lazy queue); see
    reports_head_timestamp."""
    reports_head_timestamp: bool = False
    """False when the broker leaves the field out (RabbitMQ 3.10: quorum queues; a classic
    queue not sampled yet), and over AMQP."""
    queue_type: str | None = None
    """classic, quorum or stream (management API only)."""

    def facts(self, exclude_unacknowledged: bool, read_at: float | None) -> depth.QueueFacts:
        if self.unacknowledged is None:
            messages, counted = self.ready, "ready only: AMQP reports no unacknowledged count"
        elif exclude_unacknowledged:
            messages, counted = self.ready, "ready only: excludeUnacknowledged"
        else:
            messages, counted = self.ready + self.unacknowledged, "ready + unacknowledged"
        return depth.QueueFacts(float(messages), self.publish_rate, self.deliver_get_rate,
                                counted, head_message_timestamp=self.head_message_timestamp,
                                read_at=read_at)

    @property
    def messages(self) -> int:
        """Ready + unacknowledged where known: what head_message_timestamp covers."""
        return self.ready + (self.unacknowledged or 0)


@dataclasses.dataclass(frozen=True)
class RabbitMQReading:
    vhost: str
    queues: tuple[QueueStats, ...]
    via: str
    """"amqp" or "http"."""
    read_at: float | None = None
    """Seconds since the epoch (the scaler's clock) when the management API answered:
    MessageAge is this minus the head message's timestamp. None over AMQP."""

    def facts(self, exclude_unacknowledged: bool, operation: depth.Operation
              ) -> depth.QueueFacts:
        per_queue = [queue.facts(exclude_unacknowledged, self.read_at) for queue in self.queues]
        if len(per_queue) == 1:
            return per_queue[0]
        return depth.aggregate(per_queue, operation)

    def arrivals(self) -> base.Arrivals | None:
        """The publish rates of the queues, summed (the messages the consumers must take);
        None over AMQP, which reports no rates."""
        rates = [queue.publish_rate for queue in self.queues]
        if not rates or any(rate is None for rate in rates):
            return None
        return base.Arrivals(rate=sum(rate for rate in rates if rate is not None))

    def progress(self) -> Mapping[Hashable, object]:
        return {}  # queue depth needs no persistence tracking

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "via": self.via, "vhost": self.vhost,
            "queues": [dataclasses.asdict(queue) for queue in self.queues]}
        if self.read_at is not None:
            described["readAt"] = self.read_at
        return described
