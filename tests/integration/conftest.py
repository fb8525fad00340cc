"""Fixtures that talk to the real brokers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import prometheus_client
import pytest

from scaler.decisions import DecisionLog
from scaler.metrics import ScalerMetrics
from scaler.poller import Poller, PollerSettings
from scaler.service import Evaluation, ExternalScalerService
from tests.conftest import broker_address
from tests.integration.brokers import KafkaHelper, RabbitMQHelper
from tests.integration.kafka_proxy import CountingKafkaProxy


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


# Each request reads afresh (max age 50 ms), and a committed offset that did not move between
# two reads counts as stalled at once, so tests need no waiting.
TEST_POLLER = PollerSettings(broker_timeout_s=5.0, poll_interval_s=0.5, max_age_s=0.05,
                             persistent_after_s=0.0)


@pytest.fixture
async def evaluate() -> AsyncIterator[Callable[..., Awaitable[Evaluation]]]:
    """evaluate(**metadata) -> Evaluation: a fresh read and decision, as the service makes it."""
    poller = Poller(TEST_POLLER)
    scaler_service = ExternalScalerService(
        poller, ScalerMetrics(prometheus_client.CollectorRegistry()),
        DecisionLog(idle_after_s=60.0, clock=time.monotonic))

    async def run(**metadata: str) -> Evaluation:
        return await scaler_service.evaluate("default", "worker", metadata)

    yield run
    poller.close()


@pytest.fixture
def kafka_proxy() -> Iterator[CountingKafkaProxy]:
    """A request-counting proxy: point bootstrapServers at `.address`."""
    with CountingKafkaProxy(broker_address("QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS"),
                            broker_address("QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER")) as proxy:
        yield proxy
