"""What an ActiveMQ read returns: one MBean attribute's count."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

from scaler.sources import base


@dataclasses.dataclass(frozen=True)
class ActiveMQReading:
    mbean: str
    attribute: str
    messages: int
    added: int | None = None
    """Messages ever added to the queue (Artemis MessagesAdded, Classic EnqueueCount; it
    restarts at 0 with the broker), None when the MBean has no such counter."""

    def progress(self) -> Mapping[Hashable, object]:
        return {}  # queue size needs no persistence tracking

    def arrivals(self) -> base.Arrivals | None:
        return None if self.added is None else base.Arrivals(total=float(self.added))

    def describe(self) -> dict[str, Any]:
        return {"via": "jolokia", "mbean": self.mbean, "attribute": self.attribute,
                "messages": self.messages, "added": self.added}
