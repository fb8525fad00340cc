"""Shared fixtures: broker addresses, unique names, a running scaler.

Brokers are real servers on 127.0.0.1 that the testbed (tests/testbed) starts the first time a
test asks for one, unless the QUEUE_SCALER_TEST_* variables already point at brokers of yours.
A broker that cannot be had fails the test loudly, naming the command; nothing skips.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
import pytest

from scaler import app
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings

if TYPE_CHECKING:  # imported by pytest as a plugin first, so that its asserts are rewritten
    from tests.testbed.pytest_plugin import Testbed

pytest_plugins = ["tests.testbed.pytest_plugin"]


@pytest.fixture(scope="session")
def kafka_bootstrap(testbed: Testbed) -> str:
    return testbed.variable("QUEUE_SCALER_TEST_KAFKA")


@pytest.fixture(scope="session")
def rabbitmq_amqp_url(testbed: Testbed) -> str:
    return testbed.variable("QUEUE_SCALER_TEST_RABBITMQ_AMQP")


@pytest.fixture(scope="session")
def rabbitmq_http_url(testbed: Testbed) -> str:
    return testbed.variable("QUEUE_SCALER_TEST_RABBITMQ_HTTP")


@dataclasses.dataclass(frozen=True)
class SecureBrokers:
    """The brokers' TLS listeners (certificates from the test CA) and Kafka's SASL user."""

    ca_file: str
    kafka_sasl_ssl: str
    kafka_user: str
    kafka_password: str
    rabbitmq_amqps_url: str
    rabbitmq_https_url: str


@pytest.fixture(scope="session")
def secure_brokers(testbed: Testbed) -> SecureBrokers:
    return SecureBrokers(
        ca_file=testbed.variable("QUEUE_SCALER_TEST_TLS_CA"),
        kafka_sasl_ssl=testbed.variable("QUEUE_SCALER_TEST_KAFKA_SASL_SSL"),
        kafka_user=testbed.variable("QUEUE_SCALER_TEST_KAFKA_SASL_USER"),
        kafka_password=testbed.variable("QUEUE_SCALER_TEST_KAFKA_SASL_PASSWORD"),
        rabbitmq_amqps_url=testbed.variable("QUEUE_SCALER_TEST_RABBITMQ_AMQPS"),
        rabbitmq_https_url=testbed.variable("QUEUE_SCALER_TEST_RABBITMQ_HTTPS"))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """unique_name('orders') -> 'orders-<test>-<random>': every test gets its own names."""
    test = request.node.name.split("[")[0].removeprefix("test_")[:40].replace("_", "-")

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def scaler_settings() -> Settings:
    # A tiny reuse window: each call after a broker change sees fresh data, while concurrent
    # calls still share one read.
    return Settings(grpc_address="127.0.0.1:0", http_address="127.0.0.1:0",
                    poll_interval_s=0.5, max_data_age_s=0.05, stream_interval_s=0.2,
                    shutdown_grace_s=1.0)


@pytest.fixture
async def scaler(scaler_settings: Settings) -> AsyncIterator[app.App]:
    running = await app.start(scaler_settings)
    yield running
    await running.stop()


@pytest.fixture
async def channel(scaler: app.App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ExternalScalerStub:
    return pb_grpc.ExternalScalerStub(channel)
