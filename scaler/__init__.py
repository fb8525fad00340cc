"""queue-scaler: a KEDA external scaler for Kafka consumer lag, RabbitMQ queue depth and ActiveMQ
queue size."""
