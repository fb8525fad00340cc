"""Tables of named cases for the pure scaling policy (no broker, no clock)."""

from __future__ import annotations

import math

import pytest

from scaler import policy
from scaler.policy import ReplicaBounds, age, depth, lag
from scaler.policy.lag import OffsetResetPolicy, PartitionOffsets

EARLIEST = OffsetResetPolicy.EARLIEST
LATEST = OffsetResetPolicy.LATEST


def partitions(*specs: tuple[int, int, int | None]) -> list[PartitionOffsets]:
    """(log_start, log_end, committed) per partition of topic 't'."""
    return [PartitionOffsets("t", index, start, end, committed)
            for index, (start, end, committed) in enumerate(specs)]


def scaling(**overrides: object) -> lag.LagOptions:
    options: dict[str, object] = dict(lag_threshold=1, activation_lag_threshold=1,
                                      offset_reset_policy=EARLIEST)
    options.update(overrides)
    return lag.LagOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("offsets", "options", "value", "active", "replicas"), [
    # Empty topic, no commits: nothing to do.
    pytest.param(partitions((0, 0, None), (0, 0, None), (0, 0, None)), scaling(),
                 0, False, 0, id="earliest-no-commits-empty"),
    # One retained message: lag 1 is not > activationLagThreshold 1.
    pytest.param(partitions((0, 1, None), (0, 0, None), (0, 0, None)), scaling(),
                 1, False, 0, id="earliest-no-commits-one-message-below-activation"),
    # Two messages: lag 2 > 1, ceil(2 / 1) = 2 replicas.
    pytest.param(partitions((0, 1, None), (0, 1, None), (0, 0, None)), scaling(),
                 2, True, 2, id="earliest-no-commits-two-messages"),
    # Seven messages on 3 partitions: capped at 3 partitions x threshold 1.
    pytest.param(partitions((0, 3, None), (0, 2, None), (0, 2, None)), scaling(),
                 3, True, 3, id="earliest-no-commits-partition-cap"),
    # Deleted messages (log start 5) do not count: only the 2 retained ones (KEDA counts 7).
    pytest.param(partitions((5, 7, None)), scaling(allow_idle_consumers=True),
                 2, True, 2, id="earliest-counts-retained-messages-only"),
    # latest without commits: one per partition, whatever the backlog.
    pytest.param(partitions((0, 100, None), (0, 0, None), (0, 5, None)),
                 scaling(offset_reset_policy=LATEST, activation_lag_threshold=0),
                 3, True, 3, id="latest-no-commits-counts-one-per-partition"),
    # scaleToZeroOnInvalidOffset: uncommitted partitions count 0 under either policy.
    pytest.param(partitions((0, 100, None), (0, 5, None)),
                 scaling(scale_to_zero_on_invalid_offset=True), 0, False, 0,
                 id="scale-to-zero-on-invalid-offset"),
    # Committed: lag is log end - committed, summed over partitions.
    pytest.param(partitions((0, 10, 4), (0, 10, 5), (0, 10, 6)), scaling(lag_threshold=10),
                 15, True, 2, id="committed-lag-sum"),
    # A commit past the log end (topic recreated) is clamped to 0, not -90 cancelling 5.
    pytest.param(partitions((0, 10, 100), (0, 10, 5)), scaling(lag_threshold=10),
                 5, True, 1, id="negative-lag-clamped-per-partition"),
    # 3 partitions, threshold 10, lag 39: KEDA's integer division lets the HPA ask for 4.
    pytest.param(partitions((0, 13, 0), (0, 13, 0), (0, 13, 0)), scaling(lag_threshold=10),
                 30, True, 3, id="ceiling-division-cap"),
    # Exactly at the cap: 30 / 10 = 3 replicas, no cap needed.
    pytest.param(partitions((0, 10, 0), (0, 10, 0), (0, 10, 0)), scaling(lag_threshold=10),
                 30, True, 3, id="at-the-cap"),
    # allowIdleConsumers lifts the partition cap: 5 messages on 3 partitions -> 5 replicas.
    pytest.param(partitions((0, 2, 0), (0, 2, 0), (0, 1, 0)),
                 scaling(allow_idle_consumers=True), 5, True, 5, id="allow-idle-consumers"),
    # limitToPartitionsWithLag: 6 messages on one partition -> capped at 1 replica.
    pytest.param(partitions((0, 6, 0), (0, 0, 0), (0, 0, 0)),
                 scaling(limit_to_partitions_with_lag=True), 1, True, 1,
                 id="limit-to-partitions-with-lag"),
    # Even distribution: lag 8 on 10 partitions -> 8 consumers -> next divisor of 10 is 10.
    pytest.param(partitions(*[(0, 1, 0)] * 8, *[(0, 0, 0)] * 2),
                 scaling(ensure_even_distribution_of_partitions=True), 10, True, 10,
                 id="even-distribution-lag-8-of-10"),
    # Even distribution: lag 4 on 10 partitions -> 4 consumers -> divisor 5.
    pytest.param(partitions(*[(0, 1, 0)] * 4, *[(0, 0, 0)] * 6),
                 scaling(ensure_even_distribution_of_partitions=True), 5, True, 5,
                 id="even-distribution-lag-4-of-10"),
    # Even distribution with no lag stays at 0 (no phantom replica).
    pytest.param(partitions(*[(0, 0, 0)] * 10),
                 scaling(ensure_even_distribution_of_partitions=True, activation_lag_threshold=0),
                 0, False, 0, id="even-distribution-no-lag"),
    # Threshold +-1 around activation 5 with lag 5 and 6.
    pytest.param(partitions((0, 5, 0)), scaling(activation_lag_threshold=5, lag_threshold=10),
                 5, False, 0, id="lag-equal-to-activation-is-inactive"),
    pytest.param(partitions((0, 6, 0)), scaling(activation_lag_threshold=5, lag_threshold=10),
                 6, True, 1, id="lag-above-activation-is-active"),
    # No partitions at all (group without commits and no topic): inactive.
    pytest.param([], scaling(), 0, False, 0, id="no-partitions"),
])
def test_lag_decision(offsets: list[PartitionOffsets], options: lag.LagOptions,
                        value: float, active: bool, replicas: int) -> None:
    decision = lag.decide(offsets, options, ReplicaBounds())
    assert (decision.metric_value, decision.is_active, decision.desired_replicas) == (
        value, active, replicas)


def test_persistent_lag_is_excluded_from_scaling_but_counts_for_activation() -> None:
    options = scaling(exclude_persistent_lag=True, lag_threshold=1, activation_lag_threshold=0)
    # Partition 0 is stuck with lag 8; partition 1 moves and has lag 1.
    now = partitions((0, 10, 2), (0, 2, 1))
    decision = lag.decide(now, options, ReplicaBounds(), stalled={("t", 0)})
    assert decision.metric_value == 1
    assert decision.backlog == 9
    assert decision.is_active is True


def test_persistent_lag_covers_partitions_without_commits() -> None:
    options = scaling(exclude_persistent_lag=True, activation_lag_threshold=0)
    decision = lag.decide(partitions((0, 4, None)), options, ReplicaBounds(), stalled={("t", 0)})
    assert decision.metric_value == 0
    assert decision.is_active is True


def test_stalled_partitions_count_when_persistent_lag_is_not_excluded() -> None:
    options = scaling(allow_idle_consumers=True)
    decision = lag.decide(partitions((0, 4, 0)), options, ReplicaBounds(), stalled={("t", 0)})
    assert decision.metric_value == 4


@pytest.mark.parametrize(("value", "active", "bounds", "expected"), [
    # Active with value 0 (only persistent lag): KEDA keeps at least one replica.
    pytest.param(0.0, True, ReplicaBounds(), 1, id="active-means-at-least-one"),
    # Inactive goes to 0 unless minReplicaCount says otherwise.
    pytest.param(50.0, False, ReplicaBounds(minimum=2), 2, id="min-replica-count-floor"),
    pytest.param(50.0, True, ReplicaBounds(maximum=3), 3, id="max-replica-count-ceiling"),
    pytest.param(21.0, True, ReplicaBounds(), 3, id="ceil-of-value-over-target"),
])
def test_replica_bounds(value: float, active: bool, bounds: ReplicaBounds, expected: int) -> None:
    replicas, _ = policy.decide_replicas(value, 10.0, active, bounds)
    assert replicas == expected


Q = depth.Mode.QUEUE_LENGTH


def facts(messages: float, publish: float | None = None, deliver: float | None = None
          ) -> depth.QueueFacts:
    return depth.QueueFacts(messages, publish, deliver, "ready")


@pytest.mark.parametrize(("queue", "options", "value", "active", "replicas"), [
    # Empty queue: inactive, 0 replicas.
    pytest.param(facts(0), depth.DepthOptions(Q, 20, 0), 0, False, 0, id="empty-queue"),
    # 41 messages, 20 per replica: 3 replicas.
    pytest.param(facts(41), depth.DepthOptions(Q, 20, 0), 41, True, 3, id="queue-length-ceil"),
    # activationValue 5: 5 messages is not > 5; 6 is.
    pytest.param(facts(5), depth.DepthOptions(Q, 20, 5), 5, False, 0, id="length-at-activation"),
    pytest.param(facts(6), depth.DepthOptions(Q, 20, 5), 6, True, 1, id="length-above-activation"),
    # MessageRate: the value is the publish rate.
    pytest.param(facts(0, 12.5, 0), depth.DepthOptions(depth.Mode.MESSAGE_RATE, 5, 0),
                 12.5, True, 3, id="message-rate"),
    # MessageRate with nobody publishing but a backlog: still active (KEDA), 1 replica.
    pytest.param(facts(30, 0, 0), depth.DepthOptions(depth.Mode.MESSAGE_RATE, 5, 0),
                 0, True, 1, id="message-rate-idle-publisher-with-backlog"),
    # Nothing published, nothing queued: inactive.
    pytest.param(facts(0, 0, 0), depth.DepthOptions(depth.Mode.MESSAGE_RATE, 5, 0),
                 0, False, 0, id="message-rate-idle"),
    # DeliverGetRate: the value is the consumption rate.
    pytest.param(facts(0, 1, 9), depth.DepthOptions(depth.Mode.DELIVER_GET_RATE, 4, 0),
                 9, True, 3, id="deliver-get-rate"),
    # Ratio: 30/s in, 10/s out = 3; target 1 -> 3 replicas.
    pytest.param(facts(100, 30, 10),
                 depth.DepthOptions(depth.Mode.PUBLISHED_TO_DELIVERED_RATIO, 1, 0),
                 3, True, 3, id="published-to-delivered-ratio"),
    # Ratio with nothing delivered yet: 1 message/s per replica is assumed.
    pytest.param(facts(0, 4, 0),
                 depth.DepthOptions(depth.Mode.PUBLISHED_TO_DELIVERED_RATIO, 1, 0),
                 4, True, 4, id="ratio-with-nothing-delivered"),
    # Ratio with nothing published: 0.
    pytest.param(facts(0, 0, 5),
                 depth.DepthOptions(depth.Mode.PUBLISHED_TO_DELIVERED_RATIO, 1, 0),
                 0, False, 0, id="ratio-with-nothing-published"),
    # 600 messages drained at 10/s = 60 s; target 20 s -> 3 replicas.
    pytest.param(facts(600, 0, 10),
                 depth.DepthOptions(depth.Mode.EXPECTED_QUEUE_CONSUMPTION_TIME, 20, 0),
                 60, True, 3, id="expected-consumption-time"),
])
def test_depth_decision(queue: depth.QueueFacts, options: depth.DepthOptions, value: float,
                        active: bool, replicas: int) -> None:
    decision = depth.decide(queue, options, ReplicaBounds())
    assert (decision.metric_value, decision.is_active, decision.desired_replicas) == (
        value, active, replicas)


@pytest.mark.parametrize(("operation", "messages", "publish"), [
    pytest.param(depth.Operation.SUM, 60, 6.0, id="sum"),
    pytest.param(depth.Operation.AVG, 20, 2.0, id="avg"),
    pytest.param(depth.Operation.MAX, 30, 3.0, id="max"),
])
def test_aggregate_over_matching_queues(operation: depth.Operation, messages: float,
                                        publish: float) -> None:
    queues = [facts(10, 1, 0), facts(20, 2, 0), facts(30, 3, 0)]
    combined = depth.aggregate(queues, operation)
    assert (combined.messages, combined.publish_rate) == (messages, publish)


def test_rate_modes_refuse_facts_without_rates() -> None:
    with pytest.raises(ValueError, match="needs rates"):
        depth.decide(facts(1), depth.DepthOptions(depth.Mode.MESSAGE_RATE, 1, 0),
                     ReplicaBounds())


def test_decision_explains_the_cap() -> None:
    decision = lag.decide(partitions((0, 13, 0), (0, 13, 0), (0, 13, 0)),
                                   scaling(lag_threshold=10), ReplicaBounds())
    assert any("capped at 3 partitions" in reason for reason in decision.reasons)


AGE = depth.Mode.MESSAGE_AGE


def aged(messages: float, head: float | None, read_at: float = 1_000_100.0) -> depth.QueueFacts:
    """A queue read at `read_at` whose head message was published at `head` (epoch seconds)."""
    return depth.QueueFacts(messages, 0.0, 0.0, "ready + unacknowledged",
                            head_message_timestamp=head, read_at=read_at)


@pytest.mark.parametrize(("queue", "options", "value", "active", "replicas"), [
    # Head published 100 s before the read: age 100 > 30, ceil(100 / 30) = 4 replicas.
    pytest.param(aged(3, 1_000_000), depth.DepthOptions(AGE, 30, 30), 100, True, 4,
                 id="age-above-activation"),
    # Age 30 is not > activationValue 30, nor is 1 message: inactive.
    pytest.param(aged(1, 1_000_070), depth.DepthOptions(AGE, 30, 30), 30, False, 0,
                 id="age-at-activation-is-inactive"),
    # One second more: 31 > 30, ceil(31 / 30) = 2 replicas.
    pytest.param(aged(1, 1_000_069), depth.DepthOptions(AGE, 30, 30), 31, True, 2,
                 id="age-one-above-activation"),
    # An empty queue has no head message: age 0, inactive.
    pytest.param(aged(0, None), depth.DepthOptions(AGE, 30, 0), 0, False, 0,
                 id="empty-queue-is-age-0"),
    # A count of 0 with a head timestamp: RabbitMQ sampled them apart (a queue just drained);
    # the count decides: age 0, inactive.
    pytest.param(aged(0, 1_000_000), depth.DepthOptions(AGE, 30, 0), 0, False, 0,
                 id="empty-queue-with-a-stale-head-is-age-0"),
    # A message published at the read instant: age 0, yet active (KEDA: a queue that still
    # holds messages is active although its metric is idle), 1 replica.
    pytest.param(aged(1, 1_000_100), depth.DepthOptions(AGE, 30, 0), 0, True, 1,
                 id="fresh-message-is-active-by-its-count"),
    # The publisher's clock 100 s ahead of ours: clamped to 0, never negative.
    pytest.param(aged(1, 1_000_200), depth.DepthOptions(AGE, 30, 0), 0, True, 1,
                 id="future-timestamp-clamped-to-0"),
    # Same, with activationValue 5: neither age 0 nor 1 message is above it.
    pytest.param(aged(1, 1_000_200), depth.DepthOptions(AGE, 30, 5), 0, False, 0,
                 id="future-timestamp-below-activation"),
    # The read time is precise; the AMQP timestamp is whole seconds: age 100.5.
    pytest.param(aged(1, 1_000_000, read_at=1_000_100.5), depth.DepthOptions(AGE, 50, 0),
                 100.5, True, 3, id="fractional-read-time"),
])
def test_message_age_decision(queue: depth.QueueFacts, options: depth.DepthOptions,
                              value: float, active: bool, replicas: int) -> None:
    decision = depth.decide(queue, options, ReplicaBounds())
    assert (decision.metric_value, decision.is_active, decision.desired_replicas) == (
        value, active, replicas)


def test_message_age_explanation_states_timestamp_read_time_and_age() -> None:
    decision = depth.decide(aged(3, 1_000_000, read_at=1_000_100.25),
                            depth.DepthOptions(AGE, 30, 0), ReplicaBounds())
    assert decision.reasons[0] == (
        "head message timestamp 1000000, read at 1000100.25: MessageAge 100.25 s; "
        "3 messages (ready + unacknowledged)")
    assert decision.reasons[1] == "active: MessageAge 100.25 > activationValue 0"


def test_message_age_explains_a_clamped_future_timestamp() -> None:
    decision = depth.decide(aged(1, 1_000_160), depth.DepthOptions(AGE, 30, 0), ReplicaBounds())
    assert "MessageAge 0 s (-60 s clamped to 0: the publisher's clock is ahead" in (
        decision.reasons[0])


def test_message_age_suspects_a_timestamp_in_milliseconds() -> None:
    decision = depth.decide(aged(1, 1_000_000_000), depth.DepthOptions(AGE, 30, 0),
                            ReplicaBounds())
    assert decision.metric_value == 0
    assert "or it writes milliseconds where AMQP means seconds)" in decision.reasons[0]


def test_empty_queue_explains_age_0_and_inactivity() -> None:
    decision = depth.decide(aged(0, None), depth.DepthOptions(AGE, 30, 0), ReplicaBounds())
    assert decision.reasons[0].startswith(
        "no message in the queue, read at 1000100: MessageAge 0 s; 0 messages")
    assert decision.reasons[1].startswith(
        "inactive: MessageAge 0 and 0 messages <= activationValue 0")


def test_activity_by_message_count_says_why() -> None:
    # Age 2 s is not above activationValue 3; 4 messages are.
    decision = depth.decide(aged(4, 1_000_098), depth.DepthOptions(AGE, 30, 3), ReplicaBounds())
    assert decision.is_active is True
    assert decision.reasons[1] == (
        "active: 4 messages > activationValue 3, although MessageAge 2 <= 3 (as KEDA: a "
        "queue that still holds messages is active even when its metric is idle)")


@pytest.mark.parametrize(("queues", "age", "messages"), [
    # The oldest head decides: 1,000,100 - 999,700 = 400 s; the empty queue has no head.
    pytest.param([aged(2, 1_000_000), aged(5, 999_700), aged(0, None)], 400, 5,
                 id="oldest-head-of-three"),
    # An empty queue's stale head timestamp (sampled apart from its count) is no head.
    pytest.param([aged(2, 1_000_000), aged(0, 990_000)], 100, 2, id="empty-queue-stale-head"),
    # Every matching queue empty: age 0.
    pytest.param([aged(0, None), aged(0, None)], 0, 0, id="all-empty"),
])
def test_message_age_over_matching_queues_is_the_oldest_head(
        queues: list[depth.QueueFacts], age: float, messages: float) -> None:
    combined = depth.aggregate(queues, depth.Operation.MAX)
    decision = depth.decide(combined, depth.DepthOptions(AGE, 30, 0), ReplicaBounds())
    assert (decision.metric_value, decision.backlog) == (age, messages)
    assert "max over" in decision.reasons[0]


def test_aggregate_keeps_the_oldest_head_whatever_the_operation() -> None:
    # Ages do not add up; metadata allows only max with MessageAge, and the fact stays the
    # oldest head so that no operation can turn two old messages into a young average.
    combined = depth.aggregate([aged(1, 1_000_000), aged(1, 1_000_050)], depth.Operation.AVG)
    assert combined.head_message_timestamp == 1_000_000


def test_aggregate_without_a_read_time_for_every_queue_has_none() -> None:
    queues = [aged(1, 1_000_000), depth.QueueFacts(1, 0.0, 0.0, "ready")]
    assert depth.aggregate(queues, depth.Operation.MAX).read_at is None


@pytest.mark.parametrize("queue", [
    pytest.param(facts(3, 0, 0), id="no-read-time-from-the-source"),
    pytest.param(aged(3, None), id="messages-without-a-head-timestamp"),
])
def test_message_age_refuses_facts_without_timestamps(queue: depth.QueueFacts) -> None:
    # The source answers an error for these; the policy never turns them into age 0.
    with pytest.raises(ValueError, match="MessageAge needs"):
        depth.decide(queue, depth.DepthOptions(AGE, 30, 0), ReplicaBounds())


@pytest.mark.parametrize("queue", [
    # 600 messages at 10/s: 60 s.
    pytest.param(facts(600, 5, 10), id="measured-rate"),
    # Nothing delivered: 1 message/s assumed, 40 s.
    pytest.param(facts(40, 5, 0), id="nothing-delivered"),
    # Empty and idle: 0 s, inactive.
    pytest.param(facts(0, 0, 0), id="empty"),
])
def test_drain_time_is_expected_queue_consumption_time_by_another_name(
        queue: depth.QueueFacts) -> None:
    expected = depth.decide(
        queue, depth.DepthOptions(depth.Mode.EXPECTED_QUEUE_CONSUMPTION_TIME, 20, 0),
        ReplicaBounds())
    drain = depth.decide(queue, depth.DepthOptions(depth.Mode.DRAIN_TIME, 20, 0),
                         ReplicaBounds())
    assert (drain.metric_value, drain.is_active, drain.desired_replicas) == (
        expected.metric_value, expected.is_active, expected.desired_replicas)
    assert drain.reasons[0].startswith("DrainTime (alias of ExpectedQueueConsumptionTime): ")
    assert expected.reasons[0].startswith("ExpectedQueueConsumptionTime: ")
    assert drain.reasons[0].split(": ", 1)[1] == expected.reasons[0].split(": ", 1)[1]


# --- lagMetric: seconds (policy.age)

READ_AT_MS = 1_800_000_000_000
CT = age.TimestampKind.CREATE_TIME


def kafka_rows(*specs: tuple[int, int, int | None, int, int, float | None]) -> list[age.AgeRow]:
    """(log_start, log_end, committed, timestamp ms, kind, consume rate) per partition of 't'."""
    return [("t", index, *spec) for index, spec in enumerate(specs)]


def age_options(**overrides: object) -> age.AgeOptions:
    options: dict[str, object] = dict(lag_seconds_threshold=10.0,
                                      activation_lag_seconds_threshold=0.0,
                                      offset_reset_policy=LATEST)
    options.update(overrides)
    return age.AgeOptions(**options)  # type: ignore[arg-type]


def t_minus(s: float) -> int:
    """The timestamp of a record produced `s` seconds before the read."""
    return READ_AT_MS - int(s * 1000)


IDLE = (0, 9, 9, -1, 0, None)  # a partition without lag, never read


@pytest.mark.parametrize(("rows", "options", "value", "active", "replicas"), [
    # No lag anywhere: 0 s, however old the last record of an idle partition is.
    pytest.param(kafka_rows((0, 5, 5, t_minus(86_400 * 365), CT, None), IDLE), age_options(),
                 0.0, False, 0, id="zero-lag-is-zero-seconds-not-years"),
    # The oldest partition decides: 30 s over 5 s and 12 s; ceil(30 / 10) = 3.
    pytest.param(kafka_rows((0, 9, 4, t_minus(5), CT, None), (0, 9, 1, t_minus(30), CT, None),
                            (0, 9, 8, t_minus(12), CT, None)),
                 age_options(), 30.0, True, 3, id="max-over-partitions"),
    # A partition without lag never contributes, even with the oldest record.
    pytest.param(kafka_rows((0, 9, 9, t_minus(500), CT, None), (0, 9, 8, t_minus(7), CT, None)),
                 age_options(), 7.0, True, 1, id="partition-without-lag-does-not-contribute"),
    # 2 partitions, 100 s, 10 s per replica: capped at 2 x 10 = 20 (2 replicas, not 10).
    pytest.param(kafka_rows((0, 9, 1, t_minus(100), CT, None), IDLE), age_options(),
                 20.0, True, 2, id="partition-cap"),
    # 21 s on 2 partitions: ceil(21 / 10) = 3 > 2, so capped at 20 (ceiling, as for messages).
    pytest.param(kafka_rows((0, 9, 1, t_minus(21), CT, None), IDLE), age_options(),
                 20.0, True, 2, id="partition-cap-ceiling-division"),
    # A fractional threshold: 3 x 0.1 / 0.1 is a hair above 3 in floats; still 3 replicas.
    pytest.param(kafka_rows((0, 9, 1, t_minus(5), CT, None), IDLE, IDLE),
                 age_options(lag_seconds_threshold=0.1), 0.3, True, 3, id="cap-with-fraction"),
    # allowIdleConsumers lifts the cap: 35 s on 1 partition -> 4 replicas.
    pytest.param(kafka_rows((0, 9, 1, t_minus(35), CT, None)),
                 age_options(allow_idle_consumers=True), 35.0, True, 4,
                 id="allow-idle-consumers"),
    # limitToPartitionsWithLag: one partition with lag caps at 1 x 10.
    pytest.param(kafka_rows((0, 9, 1, t_minus(50), CT, None), IDLE, IDLE),
                 age_options(limit_to_partitions_with_lag=True), 10.0, True, 1,
                 id="limit-to-partitions-with-lag"),
    # ensureEvenDistribution: 3 consumers for 4 partitions -> 4, a divisor.
    pytest.param(kafka_rows((0, 9, 1, t_minus(25), CT, None), IDLE, IDLE, IDLE),
                 age_options(ensure_even_distribution_of_partitions=True), 40.0, True, 4,
                 id="even-distribution"),
    # Activation edge: 5 s is not > activationLagSecondsThreshold 5; 5.001 s is.
    pytest.param(kafka_rows((0, 9, 1, t_minus(5), CT, None)),
                 age_options(activation_lag_seconds_threshold=5.0), 5.0, False, 0,
                 id="age-equal-to-activation-is-inactive"),
    pytest.param(kafka_rows((0, 9, 1, t_minus(5.001), CT, None)),
                 age_options(activation_lag_seconds_threshold=5.0), 5.001, True, 1,
                 id="age-above-activation-is-active"),
    # A producer clock 2 s ahead: clamped to 0 s, never negative.
    pytest.param(kafka_rows((0, 9, 1, READ_AT_MS + 2000, CT, None)), age_options(),
                 0.0, False, 0, id="clock-skew-clamped-to-zero"),
    # Log-append time is the broker's clock: measured like a create time.
    pytest.param(kafka_rows((0, 9, 1, t_minus(8), age.TimestampKind.LOG_APPEND_TIME, None)),
                 age_options(), 8.0, True, 1, id="log-append-time"),
    # No usable timestamp (-1): lag 30 / 2 messages/s consumed = 15 s, estimated.
    pytest.param(kafka_rows((0, 31, 1, -1, CT, 2.0)), age_options(allow_idle_consumers=True),
                 15.0, True, 2, id="no-timestamp-estimated-from-consume-rate"),
    # A timestamp 10 min in the future is not believed; no rate observed yet: 1 message/s is
    # assumed, so lag 4 counts 4 s (not 0: messages are waiting; not NaN).
    pytest.param(kafka_rows((0, 5, 1, READ_AT_MS + 600_000, CT, None)), age_options(),
                 4.0, True, 1, id="far-future-timestamp-no-rate-yet"),
    # Not read in this cycle (its first batch did not fit the fetch): estimated too.
    pytest.param(kafka_rows((0, 13, 1, -1, age.TimestampKind.PENDING, 4.0)), age_options(),
                 3.0, True, 1, id="pending-read-estimated"),
    # Only transaction markers after the commit: the lag of 1 is not a message; 0 s.
    pytest.param(kafka_rows((0, 2, 1, -1, age.TimestampKind.NOTHING_WAITING, None)),
                 age_options(), 0.0, False, 0, id="only-transaction-markers-wait"),
    # No commit under latest: a consumer would start at the log end; nothing waits.
    pytest.param(kafka_rows((0, 100, None, -1, 0, None), (0, 5, None, -1, 0, None)),
                 age_options(), 0.0, False, 0, id="no-commit-latest-nothing-waits"),
    # No commit under earliest: aged from the first retained record.
    pytest.param(kafka_rows((3, 100, None, t_minus(40), CT, None)),
                 age_options(offset_reset_policy=EARLIEST, allow_idle_consumers=True),
                 40.0, True, 4, id="no-commit-earliest-first-retained-record"),
    # scaleToZeroOnInvalidOffset: no commit counts 0 s even under earliest.
    pytest.param(kafka_rows((3, 100, None, t_minus(40), CT, None)),
                 age_options(offset_reset_policy=EARLIEST, scale_to_zero_on_invalid_offset=True),
                 0.0, False, 0, id="scale-to-zero-on-invalid-offset"),
    # No partitions at all.
    pytest.param([], age_options(), 0.0, False, 0, id="no-partitions"),
])
def test_age_decision(rows: list[age.AgeRow], options: age.AgeOptions, value: float,
                      active: bool, replicas: int) -> None:
    decision = age.decide(rows, READ_AT_MS, options, ReplicaBounds())
    assert (decision.metric_value, decision.is_active, decision.desired_replicas) == (
        pytest.approx(value), active, replicas)
    assert decision.target == options.lag_seconds_threshold
    assert math.ceil(decision.metric_value / decision.target) <= max(replicas, 1)


def test_age_decision_names_the_oldest_partition() -> None:
    rows = kafka_rows((0, 9, 4, t_minus(5), CT, None), (0, 9, 2, t_minus(30), CT, None))
    decision = age.decide(rows, READ_AT_MS, age_options(), ReplicaBounds())
    assert "oldest unconsumed record: t/1 offset 2, age 30 s (from its timestamp)" in (
        decision.reasons)
    assert decision.backlog == 12  # messages, for queue_scaler_backlog_messages


def test_estimated_age_is_flagged_in_the_reasons() -> None:
    rows = kafka_rows((0, 31, 1, -1, CT, 2.0), (0, 9, 8, t_minus(3), CT, None))
    decision = age.decide(rows, READ_AT_MS, age_options(), ReplicaBounds())
    text = "\n".join(decision.reasons)
    assert ("t/0 offset 1, age 15 s (estimated: its record has no timestamp: lag 30 / consume "
            "rate 2 messages/s)") in text
    assert "1 of the partitions with lag have an estimated age" in text


def test_no_consume_rate_yet_is_explained() -> None:
    rows = kafka_rows((0, 5, 1, READ_AT_MS + 600_000, CT, None))
    decision = age.decide(rows, READ_AT_MS, age_options(), ReplicaBounds())
    assert any("600 s in the future, and no consumption has been observed yet: lag 4 / an "
               "assumed 1 message/s" in reason for reason in decision.reasons)


def test_commit_below_the_log_start_names_the_first_retained_offset() -> None:
    # The source reads the record at the log start; the reason says which offset was aged.
    rows = kafka_rows((7, 9, 2, t_minus(11), CT, None))
    decision = age.decide(rows, READ_AT_MS, age_options(), ReplicaBounds())
    assert any("t/0 offset 7, age 11 s" in reason for reason in decision.reasons)


def test_persistent_age_is_excluded_from_scaling_but_counts_for_activation() -> None:
    rows = kafka_rows((0, 9, 1, t_minus(100), CT, None), (0, 9, 8, t_minus(4), CT, None))
    decision = age.decide(rows, READ_AT_MS, age_options(exclude_persistent_lag=True),
                          ReplicaBounds(), stalled={("t", 0)})
    assert (decision.metric_value, decision.is_active) == (4.0, True)
    assert any("older persistent lag (100 s" in reason for reason in decision.reasons)
