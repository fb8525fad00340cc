"""Fixtures that talk to the real brokers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import prometheus_client
import pytest

from scaler.metrics import ScalerMetrics
from scaler.poller import Poller
from scaler.service import Evaluation, ExternalScalerService
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


@pytest.fixture
async def evaluate() -> AsyncIterator[Callable[..., Awaitable[Evaluation]]]:
    """evaluate(**metadata) -> Evaluation: one fresh read and decision, as the service makes it."""
    poller = Poller(broker_timeout_s=5.0, max_age_s=0.0)
    scaler_service = ExternalScalerService(
        poller, ScalerMetrics(prometheus_client.CollectorRegistry()), stream_interval_s=1.0)

    async def run(**metadata: str) -> Evaluation:
        return await scaler_service.evaluate("default", "worker", metadata)

    yield run
    poller.close()
