"""queue-scaler: a KEDA external scaler for Kafka consumer lag and RabbitMQ queue depth."""
