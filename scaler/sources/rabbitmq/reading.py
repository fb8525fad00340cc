"""What a RabbitMQ read returns: per-queue facts, whichever protocol read them."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

from scaler.policy import depth


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

    def facts(self, exclude_unacknowledged: bool) -> depth.QueueFacts:
        if self.unacknowledged is None:
            messages, counted = self.ready, "ready only: AMQP reports no unacknowledged count"
        elif exclude_unacknowledged:
            messages, counted = self.ready, "ready only: excludeUnacknowledged"
        else:
            messages, counted = self.ready + self.unacknowledged, "ready + unacknowledged"
        return depth.QueueFacts(float(messages), self.publish_rate, self.deliver_get_rate,
                                counted)


@dataclasses.dataclass(frozen=True)
class RabbitMQReading:
    vhost: str
    queues: tuple[QueueStats, ...]
    via: str
    """"amqp" or "http"."""

    def facts(self, exclude_unacknowledged: bool, operation: depth.Operation
              ) -> depth.QueueFacts:
        per_queue = [queue.facts(exclude_unacknowledged) for queue in self.queues]
        if len(per_queue) == 1:
            return per_queue[0]
        return depth.aggregate(per_queue, operation)

    def progress(self) -> Mapping[Hashable, object]:
        return {}  # queue depth needs no persistence tracking

    def describe(self) -> dict[str, Any]:
        return {"via": self.via, "vhost": self.vhost,
                "queues": [dataclasses.asdict(queue) for queue in self.queues]}
