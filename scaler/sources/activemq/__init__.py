"""ActiveMQ queue size (`source: activemq`), Artemis and Classic, read through Jolokia:
metadata and flavors in `metadata`, MBean names and read URLs in `mbeans`, the bulk reader (one
POST per endpoint per cycle) in `jolokia`."""

from scaler.sources.activemq.metadata import ActiveMQMetadata
from scaler.sources.activemq.reading import ActiveMQReading

__all__ = ["ActiveMQMetadata", "ActiveMQReading"]
