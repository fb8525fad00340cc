"""Tables of named cases for the pure scaling policy (no broker, no clock)."""

from __future__ import annotations

import pytest

from scaler import policy
from scaler.policy import ReplicaBounds, depth, lag
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
