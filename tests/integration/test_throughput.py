"""scalingStrategy: throughput against the real brokers: the replica count follows the
arrival rate as it rises and falls, smoothed over polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from scaler import app, sources
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.errors import BrokerUnavailableError, MetadataErrors
from scaler.poller import Poller
from scaler.service import Evaluation, parse
from tests.integration.brokers import (
    AGENT_TEMPLATE,
    ArtemisHelper,
    ClassicHelper,
    KafkaHelper,
    RabbitMQHelper,
)
from tests.integration.conftest import TEST_POLLER

Evaluate = Callable[..., Awaitable[Evaluation]]
Names = Callable[[str], str]
# 2 messages/s per replica; the backlog may take an hour, so the arrival rate decides; a 1 s
# half-life so that the test need not wait long for the average to follow.
STRATEGY = {"scalingStrategy": "throughput", "messagesPerSecondPerReplica": "2",
            "drainWithinSeconds": "3600", "arrivalRateHalfLife": "1"}


@pytest.fixture
def queue(artemis_helper: ArtemisHelper, unique_name: Names) -> Iterator[str]:
    name = unique_name("q")
    artemis_helper.create(name)
    yield name
    artemis_helper.delete(name)


def artemis_trigger(helper: ArtemisHelper, queue: str) -> dict[str, str]:
    return {"source": "activemq", "flavor": "artemis", "managementEndpoint": helper.management,
            "brokerName": helper.broker, "brokerAddress": queue, "queueName": queue,
            "usernameFromEnv": helper.user, "passwordFromEnv": helper.password, **STRATEGY}


async def replicas_while(evaluate: Evaluate, metadata: dict[str, str], seconds: float,
                         produce: Callable[[], None] | None = None) -> list[Evaluation]:
    """Evaluations every 0.25 s for `seconds`, calling `produce` (in a thread) before each."""
    evaluations = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if produce is not None:
            await asyncio.to_thread(produce)
        evaluations.append(await evaluate(**metadata))
        await asyncio.sleep(0.25)
    return evaluations


async def test_artemis_replicas_rise_with_the_arrival_rate_and_fall_after_it(
        evaluate: Evaluate, artemis_helper: ArtemisHelper, queue: str) -> None:
    metadata = artemis_trigger(artemis_helper, queue)
    idle = await evaluate(**metadata)
    assert idle.decision.desired_replicas == 0  # nothing queued: inactive

    # About 5 sends every 0.25 s: some 20 messages/s, so about 10 replicas at 2/s each.
    busy = await replicas_while(evaluate, metadata, 5.0,
                                lambda: artemis_helper.send(queue, 5))
    calm = await replicas_while(evaluate, metadata, 6.0)

    peak = max(e.decision.desired_replicas for e in busy)
    assert peak >= 5, [e.decision.reasons for e in busy[-2:]]
    # Arrivals stopped; six half-lives later the rate is near 0 and the hour-long drain of the
    # backlog needs one replica.
    assert calm[-1].decision.desired_replicas == 1, calm[-1].decision.reasons
    assert calm[-1].decision.is_active is True
    assert any(reason.startswith("throughput: (arrivals") for reason in busy[-1].decision.reasons)


async def test_the_metric_kedas_hpa_gets_is_the_replica_count_per_replica_target_1(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    artemis_helper.send(queue, 3)
    so_ref = pb.ScaledObjectRef(name="w", namespace="default",
                                scalerMetadata=artemis_trigger(artemis_helper, queue))
    spec = await stub.GetMetricSpec(so_ref)
    assert spec.metricSpecs[0].targetSizeFloat == 1
    metrics = await stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=so_ref, metricName=spec.metricSpecs[0].metricName))
    # No arrival rate yet (one poll), a backlog of 3 with an hour to drain: 1 replica.
    assert metrics.metricValues[0].metricValueFloat == 1
    assert (await stub.IsActive(so_ref)).result is True


async def test_the_arrival_rate_is_exported_per_scaled_object(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper,
        queue: str) -> None:
    so_ref = pb.ScaledObjectRef(name="exported", namespace="default",
                                scalerMetadata=artemis_trigger(artemis_helper, queue))
    labels = {"namespace": "default", "scaled_object": "exported", "source": "activemq"}
    rate = None
    for _ in range(40):  # the rate needs two polls (0.5 s apart in the test settings)
        await asyncio.to_thread(artemis_helper.send, queue, 5)
        await stub.IsActive(so_ref)
        rate = scaler.registry.get_sample_value(
            "queue_scaler_arrival_rate_messages_per_second", labels)
        if rate:
            break
        await asyncio.sleep(0.25)
    assert rate is not None
    assert rate > 0


async def test_rabbitmq_replicas_follow_the_management_api_s_publish_rate(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("q"))
    metadata = {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url,
                "queueName": queue, **STRATEGY}
    try:
        await first_statistics(evaluate, metadata)
        # About 5 messages every 0.25 s: some 20/s. The broker's rate is its own (sampled
        # every second in the test bed), so the scaler's average lags it a little more.
        busy = await replicas_while(evaluate, metadata, 8.0,
                                    lambda: rabbitmq_helper.publish(queue, 5))
        calm = await replicas_while(evaluate, metadata, 12.0)
    finally:
        rabbitmq_helper.delete(queue)

    peak = max(e.decision.desired_replicas for e in busy)
    assert peak >= 5, [e.decision.reasons for e in busy[-2:]]
    assert calm[-1].decision.desired_replicas == 1, calm[-1].decision.reasons
    assert calm[-1].decision.desired_replicas < peak


async def first_statistics(evaluate: Evaluate, metadata: dict[str, str]) -> None:
    """Waits until the management API has sampled a new queue (a few seconds at most)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await evaluate(**metadata)
        except BrokerUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
        else:
            return


def test_throughput_over_amqp_is_refused_at_parse_time(rabbitmq_helper: RabbitMQHelper) -> None:
    with pytest.raises(MetadataErrors) as raised:
        parse({"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url,
               "queueName": "q", **STRATEGY})
    assert "scalingStrategy: needs arrival counts" in str(raised.value)


async def test_kafka_replicas_follow_the_log_end_offsets_growth(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=12)
    group = unique_name("g")
    kafka_helper.commit(group, topic, dict.fromkeys(range(12), 0))
    metadata = {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                "consumerGroup": group, "topic": topic, **STRATEGY}
    idle = await evaluate(**metadata)
    assert idle.decision.desired_replicas == 0  # no lag: inactive

    busy = await replicas_while(evaluate, metadata, 5.0, lambda: kafka_helper.produce(topic, 5))
    calm = await replicas_while(evaluate, metadata, 6.0)

    peak = max(e.decision.desired_replicas for e in busy)
    assert 5 <= peak <= 12, [e.decision.reasons for e in busy[-2:]]  # never past 12 partitions
    assert calm[-1].decision.desired_replicas == 1, calm[-1].decision.reasons


async def test_classic_replicas_follow_the_enqueue_count(
        evaluate: Evaluate, classic_helper: ClassicHelper, unique_name: Names,
        tmp_path: Path) -> None:
    queue = unique_name("q")
    classic_helper.create(queue)
    # The agent serves https with the test CA, which only a named connection may give.
    connections = tmp_path / "connections.toml"
    connections.write_text(
        f'[connections.classic]\nsource = "activemq"\nflavor = "classic"\n'
        f'managementEndpoint = "{classic_helper.endpoint}"\ncaFile = "{classic_helper.ca_file}"\n'
        f'username = "{classic_helper.user}"\npassword = "{classic_helper.password}"\n')
    trigger = parse({"source": "activemq", "connection": "classic", "brokerName":
                     classic_helper.broker, "destinationName": queue,
                     "restAPITemplate": AGENT_TEMPLATE, **STRATEGY},
                    sources.load_connections(str(connections)))
    poller = Poller(TEST_POLLER)
    half_life = trigger.common.arrival_rate_half_life
    try:
        rates = []
        for _ in range(12):  # about 3 s of some 20 messages/s
            await asyncio.to_thread(classic_helper.send, queue, 5)
            snapshot = await poller.read(trigger.source, half_life)
            rates.append(snapshot.arrival_rates.get(half_life))
            await asyncio.sleep(0.25)
    finally:
        poller.close()
        classic_helper.delete(queue)

    assert rates[0] is None  # one reading of the counter is no rate yet
    measured = [rate for rate in rates if rate is not None]
    assert measured, rates
    assert 5 < measured[-1] < 60, rates
