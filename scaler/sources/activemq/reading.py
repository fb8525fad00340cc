"""What an ActiveMQ read returns: one MBean attribute's count."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ActiveMQReading:
    mbean: str
    attribute: str
    messages: int

    def progress(self) -> Mapping[Hashable, object]:
        return {}  # queue size needs no persistence tracking

    def describe(self) -> dict[str, Any]:
        return {"via": "jolokia", "mbean": self.mbean, "attribute": self.attribute,
                "messages": self.messages}
