"""`lagMetric: seconds` against the real broker: the age of the oldest unconsumed record, read
from record timestamps with Fetch, through the real poller and service (and once through gRPC).

Unless a test says otherwise: one-partition topics, a group committed at a fixed offset (its
consumers stopped), allowIdleConsumers (so that the partition cap does not hide the age) and
lagSecondsThreshold 10. Ages are checked against the wall-clock times around each read: the
scaler reads the clock between them.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.service import Evaluation
from tests.integration.brokers import KafkaHelper, wait_until
from tests.integration.conftest import TEST_POLLER
from tests.integration.kafka_proxy import CountingKafkaProxy

Evaluate = Callable[..., Awaitable[Evaluation]]
Names = Callable[[str], str]
# Rounding: record timestamps and the read time are whole milliseconds.
MS = 0.002


def seconds_trigger(bootstrap: str, group: str, topic: str, **extra: str) -> dict[str, str]:
    return {"source": "kafka", "bootstrapServers": bootstrap, "consumerGroup": group,
            "topic": topic, "lagMetric": "seconds", "lagSecondsThreshold": "10",
            "allowIdleConsumers": "true", **extra}


def now_ms() -> int:
    return int(time.time() * 1000)


async def timed(evaluate: Evaluate, metadata: dict[str, str]) -> tuple[Evaluation, float, float]:
    """The evaluation and the wall-clock times (s) just before and just after it."""
    before = time.time()
    result = await evaluate(**metadata)
    return result, before, time.time()


async def once_read_after(evaluate: Evaluate, metadata: dict[str, str],
                          changed_at: float) -> Evaluation:
    """An evaluation of a read that started after `changed_at` (time.time()): a poll cycle
    already under way when the broker changed may still answer the first call."""
    while True:
        result = await evaluate(**metadata)
        if result.snapshot.reading.describe()["readAtMs"] > changed_at * 1000:
            return result
        await asyncio.sleep(TEST_POLLER.poll_interval_s / 5)


def partitions_of(result: Evaluation) -> list[dict[str, Any]]:
    partitions: list[dict[str, Any]] = result.snapshot.reading.describe()["partitions"]
    return partitions


class SteadyProducer:
    """Writes a record (CreateTime = now) every `interval_s` to partition 0 until stopped."""

    def __init__(self, kafka_helper: KafkaHelper, topic: str, interval_s: float) -> None:
        self._helper, self._topic, self._interval_s = kafka_helper, topic, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)
        self.first_sent_ms: int | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = now_ms()
            self._helper.produce_at(self._topic, 0, [sent])
            if self.first_sent_ms is None:
                self.first_sent_ms = sent
            self._stop.wait(self._interval_s)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        wait_until(lambda: self.first_sent_ms is not None, "the first record")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def one_partition(kafka_helper: KafkaHelper, unique_name: Names) -> tuple[str, str]:
    """(topic, group): a one-partition topic and a group committed at offset 0."""
    topic = kafka_helper.create_topic(unique_name("age"), partitions=1)
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0})
    return topic, group


async def test_age_grows_with_the_wait_and_drops_to_zero_once_consumed(
        evaluate: Evaluate, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    metadata = seconds_trigger(kafka_helper.bootstrap, group, topic)
    with SteadyProducer(kafka_helper, topic, interval_s=0.2) as producer:
        assert producer.first_sent_ms is not None
        first, before, after = await timed(evaluate, metadata)
        await asyncio.sleep(1.5)
        second, before_2, after_2 = await timed(evaluate, metadata)

    # The oldest unconsumed record is the first one produced: its age is the time since then.
    first_age, second_age = first.decision.metric_value, second.decision.metric_value
    assert before - producer.first_sent_ms / 1000 - MS <= first_age
    assert first_age <= after - producer.first_sent_ms / 1000 + MS
    # It grew by the time between the two reads, which is within a poll interval of the time
    # between the two evaluations.
    read_apart_s = (second.snapshot.reading.describe()["readAtMs"]
                    - first.snapshot.reading.describe()["readAtMs"]) / 1000
    assert second_age - first_age == pytest.approx(read_apart_s, abs=MS)
    assert abs(read_apart_s - (before_2 - before)) <= TEST_POLLER.poll_interval_s + (
        after_2 - before_2) + (after - before)
    assert second.decision.is_active
    assert second.decision.backlog >= 8  # 1.5 s at 5 records/s
    assert all("estimated" not in reason for reason in second.decision.reasons)

    kafka_helper.commit(group, topic, {0: kafka_helper.log_end(topic, 0)})
    consumed = await once_read_after(evaluate, metadata, time.time())

    assert (consumed.decision.metric_value, consumed.decision.is_active) == (0.0, False)
    assert consumed.decision.desired_replicas == 0


async def test_partitions_without_lag_never_contribute_age(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("age"), partitions=3)
    group = unique_name("g")
    hour_ago, sent = now_ms() - 3_600_000, now_ms() - 5_000
    kafka_helper.produce_at(topic, 0, [hour_ago] * 3)  # consumed
    kafka_helper.produce_at(topic, 1, [sent])          # waiting for 5 s
    # Partition 2 is empty.
    kafka_helper.commit(group, topic, {0: 3, 1: 0, 2: 0})

    result, before, after = await timed(evaluate, seconds_trigger(
        kafka_helper.bootstrap, group, topic))

    assert before - sent / 1000 - MS <= result.decision.metric_value <= after - sent / 1000 + MS
    described = partitions_of(result)
    assert [p["timestamp"] for p in described] == ["not_read", "create_time", "not_read"]
    assert described[1]["oldest_unconsumed_timestamp_ms"] == sent


async def test_records_with_an_explicit_old_timestamp_give_that_age(
        evaluate: Evaluate, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    day_ago = now_ms() - 86_400_000
    kafka_helper.produce_at(topic, 0, [day_ago, day_ago + 60_000])

    result, before, after = await timed(evaluate, seconds_trigger(
        kafka_helper.bootstrap, group, topic, lagSecondsThreshold="3600"))

    age = result.decision.metric_value
    assert before - day_ago / 1000 - MS <= age <= after - day_ago / 1000 + MS
    assert result.decision.desired_replicas == math.ceil(age / 3600) == 25
    assert any("oldest unconsumed record: " f"{topic}/0 offset 0, age {age:g} s "
               "(from its timestamp)" in reason for reason in result.decision.reasons)


async def test_a_commit_below_the_log_start_reads_the_first_retained_record(
        evaluate: Evaluate, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    start = now_ms() - 100_000
    kafka_helper.produce_at(topic, 0, [start + index * 1000 for index in range(10)])
    metadata = seconds_trigger(kafka_helper.bootstrap, group, topic)

    before_deleting = await evaluate(**metadata)
    kafka_helper.delete_records(topic, {0: 5})
    before = time.time()
    result = await once_read_after(evaluate, metadata, before)
    after = time.time()

    assert partitions_of(before_deleting)[0]["oldest_unconsumed_timestamp_ms"] == start
    # The committed offset 0 was deleted: the oldest record that still waits is offset 5, and
    # the cached answer for offset 0 is not used.
    fifth = (start + 5000) / 1000
    assert before - fifth - MS <= result.decision.metric_value <= after - fifth + MS
    assert partitions_of(result)[0]["log_start"] == 5
    assert any(f"{topic}/0 offset 5," in reason for reason in result.decision.reasons)


async def test_without_commits_earliest_ages_the_first_retained_record_and_latest_waits_for_none(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("age"), partitions=1)
    sent = now_ms() - 30_000
    kafka_helper.produce_at(topic, 0, [sent, sent + 1000])

    earliest, before, after = await timed(evaluate, seconds_trigger(
        kafka_helper.bootstrap, unique_name("g"), topic, offsetResetPolicy="earliest"))
    latest = await evaluate(**seconds_trigger(kafka_helper.bootstrap, unique_name("g"), topic))

    assert before - sent / 1000 - MS <= earliest.decision.metric_value <= (
        after - sent / 1000 + MS)
    assert (latest.decision.metric_value, latest.decision.is_active) == (0.0, False)
    assert any("nothing waits for a consumer that starts at the log end (latest)" in reason
               for reason in latest.decision.reasons)


async def test_a_far_future_timestamp_is_not_believed_and_the_age_is_estimated(
        evaluate: Evaluate, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    # 30 min ahead: past the 5 min the scaler believes, within the broker's 1 h limit
    # (log.message.timestamp.after.max.ms).
    kafka_helper.produce_at(topic, 0, [now_ms() + 1_800_000] * 3)

    result = await evaluate(**seconds_trigger(kafka_helper.bootstrap, group, topic))

    # No consumption observed yet: 1 message/s is assumed, so lag 3 counts 3 s, not 0.
    assert result.decision.metric_value == 3.0
    assert result.decision.is_active
    reasons = "\n".join(result.decision.reasons)
    assert "estimated: its record's timestamp is 1800 s in the future" in reasons
    assert "no consumption has been observed yet" in reasons
    assert "1 of the partitions with lag have an estimated age" in reasons


async def test_log_append_time_topics_are_aged_by_the_brokers_clock(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic_with_configs(
        unique_name("age"), 1, {"message.timestamp.type": "LogAppendTime"})
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0})
    appended = now_ms()
    kafka_helper.produce_at(topic, 0, [appended - 86_400_000])  # the producer's time is ignored

    result, _, after = await timed(evaluate, seconds_trigger(
        kafka_helper.bootstrap, group, topic))

    assert result.decision.metric_value <= after - appended / 1000 + MS
    assert partitions_of(result)[0]["timestamp"] == "log_append_time"


async def test_only_a_transaction_marker_after_the_commit_is_no_wait(
        evaluate: Evaluate, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    kafka_helper.produce_in_a_transaction(topic, 0, 2)  # offsets 0, 1 and the marker at 2
    kafka_helper.commit(group, topic, {0: 2})

    result = await evaluate(**seconds_trigger(kafka_helper.bootstrap, group, topic))

    # The lag is 1 (the marker), but no message waits.
    assert result.decision.backlog == 0
    assert (result.decision.metric_value, result.decision.is_active) == (0.0, False)
    assert partitions_of(result)[0]["timestamp"] == "nothing_waiting"


async def test_a_first_batch_bigger_than_the_fetch_size_is_read_in_the_next_cycle(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("age"), partitions=2)
    group = unique_name("g")
    start = now_ms() - 400_000
    # One batch of 100 records of 400 bytes (40 kB, over the first fetch size of 16 KiB) per
    # partition; record i was produced i s after `start` on partition 0, i/2 s on partition 1.
    for partition, step in ((0, 1000), (1, 500)):
        kafka_helper.produce_one_batch(topic, partition, [
            start + index * step for index in range(100)], b"x" * 400)
    kafka_helper.commit(group, topic, {0: 50, 1: 50})
    metadata = seconds_trigger(kafka_helper.bootstrap, group, topic)

    first = await evaluate(**metadata)
    before = time.time()
    second = await once_read_after(evaluate, metadata, before)
    after = time.time()

    # Kafka returns the first partition of a Fetch whole, and a later partition whose first
    # batch is over its fetch size not at all (checked on Kafka 4.1): partition 1 is estimated
    # once, then asked for first, and bigger.
    assert [p["timestamp"] for p in partitions_of(first)] == ["create_time", "pending"]
    assert partitions_of(first)[0]["oldest_unconsumed_timestamp_ms"] == start + 50 * 1000
    assert any("1 of the partitions with lag have an estimated age" in reason
               for reason in first.decision.reasons)
    assert [p["oldest_unconsumed_timestamp_ms"] for p in partitions_of(second)] == [
        start + 50 * 1000, start + 50 * 500]
    oldest = (start + 50 * 500) / 1000
    assert before - oldest - MS <= second.decision.metric_value <= after - oldest + MS


async def test_an_unchanged_committed_offset_costs_no_new_fetch(
        evaluate: Evaluate, kafka_helper: KafkaHelper, kafka_proxy: CountingKafkaProxy,
        unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("age"), partitions=3)
    group = unique_name("g")
    kafka_helper.produce_round_robin(topic, [3, 3, 3])
    kafka_helper.commit(group, topic, {0: 0, 1: 1, 2: 3})
    metadata = seconds_trigger(kafka_proxy.address, group, topic)

    await evaluate(**metadata)  # cold: reads the records at offsets 0 and 1
    kafka_proxy.reset()
    for _ in range(4):
        await evaluate(**metadata)
        await asyncio.sleep(TEST_POLLER.poll_interval_s)
    unchanged = kafka_proxy.counts()

    kafka_helper.commit(group, topic, {0: 2, 1: 1, 2: 3})
    kafka_proxy.reset()
    await evaluate(**metadata)
    for _ in range(3):
        await asyncio.sleep(TEST_POLLER.poll_interval_s)
        await evaluate(**metadata)
    moved = kafka_proxy.counts()

    # Every evaluation read the offsets afresh, but the records at unchanged committed offsets
    # were not fetched again.
    assert unchanged.get("OffsetFetch", 0) >= 3
    assert "Fetch" not in unchanged, unchanged
    # Partition 0's committed offset moved: one Fetch (one leader), once.
    assert moved.get("Fetch") == 1, moved


async def test_grpc_reports_the_seconds_target_and_the_age(
        stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        one_partition: tuple[str, str]) -> None:
    topic, group = one_partition
    sent = now_ms() - 120_000
    kafka_helper.produce_at(topic, 0, [sent])
    so_ref = pb.ScaledObjectRef(name="orders", namespace="default", scalerMetadata=seconds_trigger(
        kafka_helper.bootstrap, group, topic, lagSecondsThreshold="30.5",
        activationLagSecondsThreshold="60"))

    spec = await stub.GetMetricSpec(so_ref)
    before = time.time()
    reply = await stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=so_ref, metricName=spec.metricSpecs[0].metricName))
    after = time.time()
    active = await stub.IsActive(so_ref)

    assert (spec.metricSpecs[0].targetSizeFloat, spec.metricSpecs[0].targetSize) == (30.5, 31)
    (value,) = reply.metricValues
    assert before - sent / 1000 - MS <= value.metricValueFloat <= after - sent / 1000 + MS
    assert value.metricValue == math.ceil(value.metricValueFloat)
    assert active.result is True  # about 120 s > 60 s
