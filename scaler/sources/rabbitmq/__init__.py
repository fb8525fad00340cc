"""RabbitMQ queue depth and rates (`source: rabbitmq`): metadata in `metadata`, the AMQP reader
(pika, ready messages only) in `amqp`, the management HTTP API reader (ready + unacknowledged,
rates, regex over all pages) in `management`."""

from scaler.sources.rabbitmq.metadata import RabbitMQMetadata
from scaler.sources.rabbitmq.reading import QueueStats, RabbitMQReading

__all__ = ["QueueStats", "RabbitMQMetadata", "RabbitMQReading"]
