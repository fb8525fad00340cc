"""One poller per cluster, batched reads, freshness and staleness, against the real Kafka
(behind a request-counting proxy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from scaler import app, errors
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.poller import Poller, PollerSettings
from scaler.service import parse
from scaler.settings import Settings
from tests.integration.brokers import KafkaHelper
from tests.integration.kafka_proxy import CountingKafkaProxy

Names = Callable[[str], str]
POLL_INTERVAL_S = 0.5


@pytest.fixture
def scaler_settings() -> Settings:
    # Background reads every 0.5 s; answers may be up to 5 s old, so KEDA's calls never read.
    return Settings(grpc_address="127.0.0.1:0", http_address="127.0.0.1:0",
                    poll_interval_s=POLL_INTERVAL_S, max_data_age_s=5.0, shutdown_grace_s=1.0)


async def test_fifty_scaled_objects_share_one_connection_and_batched_requests(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        kafka_proxy: CountingKafkaProxy, unique_name: Names) -> None:
    topics = [kafka_helper.create_topic(unique_name(f"t{index}")) for index in range(5)]
    refs = []
    for index in range(50):
        group = unique_name(f"g{index}")
        kafka_helper.commit(group, topics[index % 5], {0: 0, 1: 0, 2: 0})
        refs.append(pb.ScaledObjectRef(name=f"so-{index}", namespace="bench", scalerMetadata={
            "source": "kafka", "bootstrapServers": kafka_proxy.address,
            "consumerGroup": group, "topic": topics[index % 5]}))
    kafka_helper.produce(topics[0], 30)

    async def keda_poll() -> None:
        """What KEDA does for every ScaledObject on each polling interval."""
        async def one(so_ref: pb.ScaledObjectRef) -> None:
            spec = await stub.GetMetricSpec(so_ref)
            await stub.GetMetrics(pb.GetMetricsRequest(
                scaledObjectRef=so_ref, metricName=spec.metricSpecs[0].metricName))
            await stub.IsActive(so_ref)
        await asyncio.gather(*(one(so_ref) for so_ref in refs))

    await keda_poll()  # cold: registers all 50 targets
    kafka_proxy.reset()
    started = time.monotonic()
    for _ in range(3):
        await keda_poll()  # 450 RPCs
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    counts = kafka_proxy.counts()

    assert scaler.poller.stats() == {"connections": 1, "targets": 50}
    # Each background cycle reads all 50 groups with one OffsetFetch and all 15 partitions with
    # one ListOffsets (plus the Metadata kafka-python sends to describe topics and find their
    # leaders); the 450 RPCs add no request at all.
    max_cycles = elapsed / POLL_INTERVAL_S + 2
    for api, per_cycle in (("OffsetFetch", 1), ("ListOffsets", 1), ("Metadata", 2)):
        assert 1 <= counts.get(api, 0) <= per_cycle * max_cycles, (api, counts, elapsed)
    assert sum(counts.values()) <= 4 * max_cycles, counts


async def test_last_good_reading_is_served_until_stale_then_unavailable(
        kafka_helper: KafkaHelper, kafka_proxy: CountingKafkaProxy,
        unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, 5)
    now = [1000.0]
    poller = Poller(PollerSettings(broker_timeout_s=2.0, poll_interval_s=3600.0, max_age_s=5.0,
                                   stale_after_s=60.0), clock=lambda: now[0])
    trigger = parse({"source": "kafka", "bootstrapServers": kafka_proxy.address,
                     "consumerGroup": unique_name("g"), "topic": topic,
                     "offsetResetPolicy": "earliest"}).source
    try:
        good = await poller.read(trigger)
        kafka_proxy.stop()  # the broker is now unreachable for this client

        now[0] += 10  # past max age: the next answer needs a read, which fails
        within_bound = await poller.read(trigger)
        now[0] += 60  # the last good reading is now 70 s old
        with pytest.raises(errors.StaleDataError) as stale:
            await poller.read(trigger)
    finally:
        poller.close()

    assert within_bound.reading == good.reading
    assert isinstance(within_bound.last_error, errors.BrokerUnavailableError)
    assert "staleness bound" in str(stale.value)


async def test_a_target_nobody_asks_about_stops_being_polled(
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    now = [1000.0]
    poller = Poller(PollerSettings(poll_interval_s=0.05, idle_after_s=30.0),
                    clock=lambda: now[0])
    trigger = parse({"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                     "consumerGroup": unique_name("g"), "topic": topic}).source
    try:
        await poller.read(trigger)
        assert poller.stats() == {"connections": 1, "targets": 1}
        now[0] += 31
        for _ in range(100):  # the loop notices on its next pass
            if poller.stats()["connections"] == 0:
                break
            await asyncio.sleep(0.05)
        assert poller.stats() == {"connections": 0, "targets": 0}
    finally:
        poller.close()
