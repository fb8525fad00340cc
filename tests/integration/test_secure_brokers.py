"""Secure broker connections against the real brokers' TLS listeners: Kafka SASL_SSL with PLAIN
and SCRAM, RabbitMQ over amqps and https; credentials and the private CA come from a named
connection in the scaler's connections file. Wrong passwords are PERMISSION_DENIED, a broker
certificate the scaler cannot verify is an error, and none of it ever reads as 0."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from scaler import app, sources
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings
from tests.conftest import SecureBrokers
from tests.integration.brokers import KafkaHelper, RabbitMQHelper, wait_until

Names = Callable[[str], str]
WRONG_PASSWORD = "not-the-password-7Qx"


def connections_toml(secure: SecureBrokers) -> str:
    kafka = (f'source = "kafka"\nbootstrapServers = "{secure.kafka_sasl_ssl}"\n'
             f'tls = "enable"\nusername = "{secure.kafka_user}"\n')
    ca = f'caFile = "{secure.ca_file}"\n'
    good = f'password = "{secure.kafka_password}"\n'
    tables = {
        "kafka-plain": kafka + ca + good + 'sasl = "plaintext"\n',
        "kafka-scram256": kafka + ca + good + 'sasl = "scram_sha256"\n',
        "kafka-scram512": kafka + ca + good + 'sasl = "scram_sha512"\n',
        "kafka-wrong-password": kafka + ca + 'sasl = "scram_sha512"\n'
                                f'password = "{WRONG_PASSWORD}"\n',
        # No caFile: the system CAs do not know the test CA.
        "kafka-no-ca": kafka + good + 'sasl = "scram_sha512"\n',
        "kafka-unsafe": kafka + good + 'sasl = "scram_sha512"\nunsafeSsl = true\n',
        "rabbit-amqps": f'source = "rabbitmq"\nhost = "{secure.rabbitmq_amqps_url}"\n' + ca,
        "rabbit-https": f'source = "rabbitmq"\nhost = "{secure.rabbitmq_https_url}"\n' + ca,
        "rabbit-amqps-wrong-password": f'source = "rabbitmq"\nhost = '
                                       f'"{secure.rabbitmq_amqps_url}"\n' + ca +
                                       f'password = "{WRONG_PASSWORD}"\n',
        "rabbit-https-wrong-password": f'source = "rabbitmq"\nhost = '
                                       f'"{secure.rabbitmq_https_url}"\n' + ca +
                                       f'password = "{WRONG_PASSWORD}"\n',
        "rabbit-amqps-no-ca": f'source = "rabbitmq"\nhost = "{secure.rabbitmq_amqps_url}"\n',
        "rabbit-https-no-ca": f'source = "rabbitmq"\nhost = "{secure.rabbitmq_https_url}"\n',
    }
    return "".join(f"[connections.{name}]\n{body}\n" for name, body in tables.items())


@pytest.fixture
async def secure_stub(tmp_path: Path, secure_brokers: SecureBrokers, scaler_settings: Settings,
                      ) -> AsyncIterator[pb_grpc.ExternalScalerStub]:
    path = tmp_path / "connections.toml"
    path.write_text(connections_toml(secure_brokers))
    running = await app.start(scaler_settings, sources.load_connections(str(path)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        yield pb_grpc.ExternalScalerStub(channel)
    await running.stop()


async def metric_or_error(stub: pb_grpc.ExternalScalerStub, metadata: dict[str, str],
                          metric: str) -> float | tuple[grpc.StatusCode, str]:
    so_ref = pb.ScaledObjectRef(name="secure", namespace="tls", scalerMetadata=metadata)
    try:
        reply = await stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=so_ref, metricName=metric), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return reply.metricValues[0].metricValueFloat


async def active_or_error(stub: pb_grpc.ExternalScalerStub, metadata: dict[str, str],
                          ) -> bool | grpc.StatusCode:
    so_ref = pb.ScaledObjectRef(name="secure", namespace="tls", scalerMetadata=metadata)
    try:
        return (await stub.IsActive(so_ref, timeout=10)).result
    except grpc.aio.AioRpcError as error:
        return error.code()


@pytest.fixture
def lagging_topic(kafka_helper: KafkaHelper, unique_name: Names) -> tuple[str, str]:
    topic = kafka_helper.create_topic(unique_name("secure"), partitions=2)
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0})
    kafka_helper.produce_round_robin(topic, [3, 4])
    return topic, group


@pytest.mark.parametrize("connection", ["kafka-plain", "kafka-scram256", "kafka-scram512",
                                        "kafka-unsafe"])
async def test_kafka_over_sasl_ssl_reads_the_lag(
        secure_stub: pb_grpc.ExternalScalerStub, lagging_topic: tuple[str, str],
        connection: str) -> None:
    topic, group = lagging_topic
    metadata = {"source": "kafka", "connection": connection, "consumerGroup": group,
                "topic": topic}
    assert await metric_or_error(secure_stub, metadata, f"kafka-{topic}") == 7
    assert await active_or_error(secure_stub, metadata) is True


async def test_kafka_wrong_password_is_permission_denied(
        secure_stub: pb_grpc.ExternalScalerStub, lagging_topic: tuple[str, str],
        secure_brokers: SecureBrokers) -> None:
    topic, group = lagging_topic
    metadata = {"source": "kafka", "connection": "kafka-wrong-password",
                "consumerGroup": group, "topic": topic}
    code, details = await metric_or_error(secure_stub, metadata, f"kafka-{topic}")  # type: ignore[misc]
    assert code is grpc.StatusCode.PERMISSION_DENIED, details
    assert WRONG_PASSWORD not in details
    assert secure_brokers.kafka_password not in details
    assert await active_or_error(secure_stub, metadata) is grpc.StatusCode.PERMISSION_DENIED


async def test_kafka_broker_certificate_that_fails_verification_is_an_error(
        secure_stub: pb_grpc.ExternalScalerStub, lagging_topic: tuple[str, str]) -> None:
    topic, group = lagging_topic
    metadata = {"source": "kafka", "connection": "kafka-no-ca", "consumerGroup": group,
                "topic": topic}
    code, details = await metric_or_error(secure_stub, metadata, f"kafka-{topic}")  # type: ignore[misc]
    assert code is grpc.StatusCode.UNAVAILABLE, details
    assert "certificate" in details
    assert await active_or_error(secure_stub, metadata) is grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def busy_queue(rabbitmq_helper: RabbitMQHelper, unique_name: Names,
               ) -> tuple[RabbitMQHelper, str]:
    queue = rabbitmq_helper.declare(unique_name("secure"))
    rabbitmq_helper.publish(queue, 4)
    return rabbitmq_helper, queue


@pytest.mark.parametrize("connection", ["rabbit-amqps", "rabbit-https"])
async def test_rabbitmq_over_tls_reads_the_depth(
        secure_stub: pb_grpc.ExternalScalerStub, busy_queue: tuple[RabbitMQHelper, str],
        connection: str) -> None:
    helper, queue = busy_queue
    # The management API samples queue depths every second.
    wait_until(lambda: helper.api_messages(queue) == 4, "the management API to count 4")
    metadata = {"source": "rabbitmq", "connection": connection, "queueName": queue}
    metric = f"rabbitmq-{urllib.parse.quote_plus(queue)}"
    assert await metric_or_error(secure_stub, metadata, metric) == 4
    assert await active_or_error(secure_stub, metadata) is True


@pytest.mark.parametrize("connection", ["rabbit-amqps-wrong-password",
                                        "rabbit-https-wrong-password"])
async def test_rabbitmq_wrong_password_over_tls_is_permission_denied(
        secure_stub: pb_grpc.ExternalScalerStub, busy_queue: tuple[RabbitMQHelper, str],
        connection: str) -> None:
    _, queue = busy_queue
    metadata = {"source": "rabbitmq", "connection": connection, "queueName": queue}
    code, details = await metric_or_error(secure_stub, metadata, f"rabbitmq-{queue}")  # type: ignore[misc]
    assert code is grpc.StatusCode.PERMISSION_DENIED, details
    assert WRONG_PASSWORD not in details


@pytest.mark.parametrize("connection", ["rabbit-amqps-no-ca", "rabbit-https-no-ca"])
async def test_rabbitmq_certificate_that_fails_verification_is_an_error(
        secure_stub: pb_grpc.ExternalScalerStub, busy_queue: tuple[RabbitMQHelper, str],
        connection: str) -> None:
    _, queue = busy_queue
    metadata = {"source": "rabbitmq", "connection": connection, "queueName": queue}
    code, details = await metric_or_error(secure_stub, metadata, f"rabbitmq-{queue}")  # type: ignore[misc]
    assert code is grpc.StatusCode.UNAVAILABLE, details
    assert "certificate" in details
    assert await active_or_error(secure_stub, metadata) is grpc.StatusCode.UNAVAILABLE
