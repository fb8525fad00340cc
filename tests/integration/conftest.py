"""Fixtures that talk to the real brokers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.brokers import KafkaHelper, RabbitMQHelper


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_helper(kafka_bootstrap: str) -> Iterator[KafkaHelper]:
    helper = KafkaHelper(kafka_bootstrap)
    yield helper
    helper.close()


@pytest.fixture
def rabbitmq_helper(rabbitmq_amqp_url: str, rabbitmq_http_url: str
                    ) -> Iterator[RabbitMQHelper]:
    helper = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    yield helper
    helper.close()
