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
from tests.integration.brokers import (
    ArtemisHelper,
    ClassicHelper,
    KafkaHelper,
    RabbitMQHelper,
    wait_until,
)
from tests.integration.kafka_proxy import CountingKafkaProxy
from tests.testbed.activemq import ActiveMQ
from tests.testbed.artemis import Artemis
from tests.testbed.kafka import Kafka
from tests.testbed.pytest_plugin import Testbed
from tests.testbed.rabbitmq import RabbitMQ


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


@pytest.fixture(scope="session")
def artemis_helper(testbed: Testbed) -> ArtemisHelper:
    return ArtemisHelper(testbed.variable("QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT"),
                         testbed.variable("QUEUE_SCALER_TEST_ARTEMIS_BROKER_NAME"),
                         testbed.variable("QUEUE_SCALER_TEST_ARTEMIS_USER"),
                         testbed.variable("QUEUE_SCALER_TEST_ARTEMIS_PASSWORD"))


@pytest.fixture(scope="session")
def classic_helper(testbed: Testbed) -> ClassicHelper:
    return ClassicHelper(testbed.variable("QUEUE_SCALER_TEST_ACTIVEMQ_JOLOKIA"),
                         testbed.variable("QUEUE_SCALER_TEST_ACTIVEMQ_BROKER_NAME"),
                         testbed.variable("QUEUE_SCALER_TEST_ACTIVEMQ_USER"),
                         testbed.variable("QUEUE_SCALER_TEST_ACTIVEMQ_PASSWORD"),
                         testbed.variable("QUEUE_SCALER_TEST_TLS_CA"))


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
def kafka_proxy(testbed: Testbed) -> Iterator[CountingKafkaProxy]:
    """A request-counting proxy: point bootstrapServers at `.address`."""
    with CountingKafkaProxy(testbed.variable("QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS"),
                            testbed.variable("QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER")) as proxy:
        yield proxy


@pytest.fixture
def kafka_service(testbed: Testbed, kafka_helper: KafkaHelper) -> Iterator[Kafka]:
    """The testbed's Kafka, for a test to kill: whatever the test does, Kafka is up again
    afterwards, and the tests' own clients talk to it again before the next test runs."""
    service = testbed.service("kafka")
    assert isinstance(service, Kafka)
    yield service
    service.up()
    wait_until(lambda: KafkaHelper.try_call(kafka_helper.admin.list_topics),
               "the test admin client to reconnect", timeout_s=60)


@pytest.fixture
def rabbitmq_service(testbed: Testbed) -> Iterator[RabbitMQ]:
    """The testbed's RabbitMQ, for a test to stop or kill; up and answering afterwards."""
    service = testbed.service("rabbitmq")
    assert isinstance(service, RabbitMQ)
    yield service
    if not service.status()[0] and service.process() is not None:
        service.ctl("start_app")  # the node is up but its broker application is stopped
    service.up()


@pytest.fixture
def artemis_service(testbed: Testbed) -> Iterator[Artemis]:
    """The testbed's Artemis, for a test to kill; up and answering afterwards."""
    service = testbed.service("artemis")
    assert isinstance(service, Artemis)
    yield service
    service.up()


@pytest.fixture
def activemq_service(testbed: Testbed) -> Iterator[ActiveMQ]:
    """The testbed's ActiveMQ Classic, for a test to kill; up and answering afterwards."""
    service = testbed.service("activemq")
    assert isinstance(service, ActiveMQ)
    yield service
    service.up()
