"""Kafka consumer lag (`source: kafka`): metadata in `metadata`, the kafka-python reader in
`source`."""

from scaler.sources.kafka.metadata import KafkaMetadata
from scaler.sources.kafka.source import KafkaReading, KafkaSource

__all__ = ["KafkaMetadata", "KafkaReading", "KafkaSource"]
