"""Kafka lag with KEDA's semantics, and KEDA's reported bugs fixed, against the real broker.

Unless a test says otherwise: 3-partition topics, lagThreshold 1, activationLagThreshold 1;
the expected value is the desired replica count of SPEC §4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from scaler.service import Evaluation
from scaler.sources.kafka import source as kafka_source
from tests.integration.brokers import KafkaHelper
from tests.integration.kafka_proxy import CountingKafkaProxy

Evaluate = Callable[..., Awaitable[Evaluation]]
Names = Callable[[str], str]


def trigger(kafka_helper: KafkaHelper, group: str, **extra: str) -> dict[str, str]:
    return {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
            "consumerGroup": group, "lagThreshold": "1", "activationLagThreshold": "1", **extra}


@pytest.mark.parametrize(("messages", "replicas"), [
    pytest.param(0, 0, id="no-messages"),
    pytest.param(1, 0, id="one-message-is-not-above-activation"),
    pytest.param(2, 2, id="two-messages"),
    pytest.param(7, 3, id="partition-cap"),
])
async def test_earliest_without_commits_counts_the_messages(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names,
        messages: int, replicas: int) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    kafka_helper.produce(topic, messages)

    result = await evaluate(**trigger(kafka_helper, unique_name("g"), topic=topic,
                                      offsetResetPolicy="earliest"))

    assert result.decision.desired_replicas == replicas


@pytest.mark.parametrize(("messages", "replicas"), [
    pytest.param(0, 0, id="no-messages"),
    pytest.param(1, 0, id="one-message-is-not-above-activation"),
    pytest.param(2, 2, id="two-messages"),
    pytest.param(7, 3, id="partition-cap"),
])
async def test_latest_after_committing_at_the_end_counts_new_messages(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names,
        messages: int, replicas: int) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    group = unique_name("g")
    kafka_helper.produce_round_robin(topic, [2, 2, 2])
    kafka_helper.commit(group, topic, {0: 2, 1: 2, 2: 2})
    kafka_helper.produce(topic, messages)

    result = await evaluate(**trigger(kafka_helper, group, topic=topic))

    assert result.decision.desired_replicas == replicas


async def test_without_topic_reads_every_topic_the_group_committed_on(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    group = unique_name("g")
    for topic in (kafka_helper.create_topic(unique_name("a")),
                  kafka_helper.create_topic(unique_name("b"))):
        kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
        kafka_helper.produce(topic, 1, partition=0)

    result = await evaluate(**trigger(kafka_helper, group))

    assert result.decision.desired_replicas == 2
    assert len(result.snapshot.reading.describe()["partitions"]) == 6


async def test_without_topic_and_commits_no_cluster_wide_sweep_happens(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    # Another topic with a backlog exists; KEDA would count it for a group that never committed.
    kafka_helper.produce(kafka_helper.create_topic(unique_name("busy")), 50)

    result = await evaluate(**trigger(kafka_helper, unique_name("fresh-group"),
                                      offsetResetPolicy="earliest"))

    assert result.snapshot.reading.describe() == {"partitions": []}
    assert result.decision.is_active is False


async def test_scale_to_zero_on_invalid_offset_ignores_uncommitted_backlog(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    kafka_helper.produce(topic, 9)

    result = await evaluate(**trigger(kafka_helper, unique_name("g"), topic=topic,
                                      offsetResetPolicy="earliest",
                                      scaleToZeroOnInvalidOffset="true"))

    assert result.decision.desired_replicas == 0


async def test_limit_to_partitions_with_lag_caps_at_the_lagging_partitions(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.produce(topic, 6, key=b"same-key")  # one key: one partition

    result = await evaluate(**trigger(kafka_helper, group, topic=topic,
                                      limitToPartitionsWithLag="true"))

    assert result.decision.backlog == 6
    assert result.decision.desired_replicas == 1


async def test_even_distribution_rounds_up_to_a_divisor_of_the_partitions(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=10)
    group = unique_name("g")
    kafka_helper.commit(group, topic, dict.fromkeys(range(10), 0))
    kafka_helper.produce_round_robin(topic, [1] * 8)  # lag 8 -> 8 consumers -> 10

    result = await evaluate(**trigger(kafka_helper, group, topic=topic,
                                      ensureEvenDistributionOfPartitions="true"))

    assert result.decision.desired_replicas == 10


async def test_allow_idle_consumers_lifts_the_partition_cap(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.produce_round_robin(topic, [2, 2, 1])

    result = await evaluate(**trigger(kafka_helper, group, topic=topic,
                                      allowIdleConsumers="true"))

    assert result.decision.desired_replicas == 5


async def test_partition_limitation_reads_only_the_listed_partitions(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=4)
    group = unique_name("g")
    kafka_helper.commit(group, topic, dict.fromkeys(range(4), 0))
    kafka_helper.produce_round_robin(topic, [1, 2, 4, 8])

    result = await evaluate(**trigger(kafka_helper, group, topic=topic,
                                      partitionLimitation="1, 3", allowIdleConsumers="true"))

    assert result.decision.backlog == 10


# --- KEDA's reported bugs, fixed -------------------------------------------------------------


async def test_earliest_without_commits_counts_only_retained_messages(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, 10)
    kafka_helper.delete_records(topic, {0: 7})  # as retention would

    result = await evaluate(**trigger(kafka_helper, unique_name("g"), topic=topic,
                                      offsetResetPolicy="earliest", allowIdleConsumers="true"))

    # Only the 3 retained messages (KEDA 2.21.0 counts 3 too: tests/integration/keda/).
    assert result.decision.backlog == 3


async def test_negative_partition_lag_does_not_cancel_other_partitions(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=2)
    group = unique_name("g")
    kafka_helper.produce_round_robin(topic, [10, 10])
    # A commit far past the log end, as after the topic was deleted and recreated.
    kafka_helper.commit(group, topic, {0: 500, 1: 5})

    result = await evaluate(**trigger(kafka_helper, group, topic=topic,
                                      allowIdleConsumers="true"))

    assert result.decision.backlog == 5


async def test_partition_cap_uses_ceiling_division(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.produce_round_robin(topic, [13, 13, 13])  # lag 39

    result = await evaluate(**trigger(kafka_helper, group, topic=topic, lagThreshold="10"))

    # KEDA: 39 / 10 = 3 is not > 3, so it reports 39 and the HPA asks for ceil(3.9) = 4.
    assert result.decision.metric_value == 30
    assert result.decision.desired_replicas == 3


async def test_persistent_lag_exclusion_covers_partitions_without_commits(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, 4)
    metadata = trigger(kafka_helper, unique_name("g"), topic=topic, offsetResetPolicy="earliest",
                       excludePersistentLag="true", allowIdleConsumers="true")

    first = await evaluate(**metadata)
    await asyncio.sleep(0.1)  # past the test poller's 50 ms max age: the next answer re-reads
    second = await evaluate(**metadata)  # nothing moved between the two reads

    assert first.decision.metric_value == 4
    assert second.decision.metric_value == 0
    assert second.decision.is_active is True  # persistent lag still counts for activation


async def test_a_group_that_does_not_exist_yet_is_not_an_error(
        evaluate: Evaluate, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    kafka_helper.produce(topic, 5)

    result = await evaluate(**trigger(kafka_helper, unique_name("never-seen"), topic=topic))

    # latest without commits: 1 per partition.
    assert result.decision.backlog == 3


async def test_groups_read_in_batches_each_get_their_own_offsets(
        evaluate: Evaluate, kafka_helper: KafkaHelper, kafka_proxy: CountingKafkaProxy,
        unique_name: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    """Committed offsets are fetched for many groups per request, a batch at a time, and
    kept as arrays: sparse commits, partition limits and shared topic offsets included."""
    monkeypatch.setattr(kafka_source, "_GROUPS_PER_OFFSET_FETCH", 2)
    topic = kafka_helper.create_topic(unique_name("t"))
    kafka_helper.produce_round_robin(topic, [4, 4, 4])
    cases: list[tuple[dict[int, int], dict[str, str], float]] = [
        ({0: 0, 1: 0, 2: 0}, {}, 12),
        ({0: 4, 1: 4, 2: 1}, {}, 3),
        ({1: 2}, {"offsetResetPolicy": "earliest"}, 4 + 2 + 4),
        ({0: 1, 1: 1, 2: 1}, {"partitionLimitation": "0,2"}, 3 + 3),
        ({2: 0}, {}, 1 + 1 + 4),  # latest: 1 for each partition without a commit
    ]
    triggers = []
    for index, (commits, extra, _) in enumerate(cases):
        group = unique_name(f"g{index}")
        kafka_helper.commit(group, topic, commits)
        triggers.append({**trigger(kafka_helper, group, topic=topic), "lagThreshold": "1000",
                         "bootstrapServers": kafka_proxy.address, **extra})
    kafka_proxy.reset()

    # Concurrent first requests share one poll cycle.
    results = await asyncio.gather(*(evaluate(**metadata) for metadata in triggers))

    assert [r.decision.metric_value for r in results] == [value for _, _, value in cases]
    assert kafka_proxy.counts()["OffsetFetch"] == 3  # 5 groups, 2 per request
